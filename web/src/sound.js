// One sound setting for every video: muted until the first interaction, then
// what the person chose (remembered across visits).
import { createStore } from "./store.js";

const KEY = "reelplane.muted";
const stored = localStorage.getItem(KEY);

export const muted = createStore(stored === null ? true : stored === "true");

export function setMuted(value) {
  localStorage.setItem(KEY, String(value));
  muted.set(value);
}

// The first interaction anywhere turns sound on, unless a choice was made before.
function firstInteraction(event) {
  removeEventListener("pointerdown", firstInteraction, true);
  removeEventListener("keydown", firstInteraction, true);
  if (localStorage.getItem(KEY) !== null) return;
  if (event.type === "keydown" && event.key.toLowerCase() === "m") return; // M decides itself
  setMuted(false);
}
if (stored === null) {
  addEventListener("pointerdown", firstInteraction, true);
  addEventListener("keydown", firstInteraction, true);
}
