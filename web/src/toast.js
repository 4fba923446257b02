// Short messages at the bottom of the screen.
import { html } from "./html.js";
import { createStore, useStore } from "./store.js";

const toasts = createStore([]);
let next = 1;

export function toast(text) {
  const id = next++;
  toasts.set((all) => [...all, { id, text }]);
  setTimeout(() => toasts.set((all) => all.filter((t) => t.id !== id)), 4000);
}

export function Toasts() {
  const all = useStore(toasts);
  return html`<div class="toasts" role="status" aria-live="polite">
    ${all.map((t) => html`<div class="toast" key=${t.id}>${t.text}</div>`)}
  </div>`;
}
