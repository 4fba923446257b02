// A caption with #hashtag and @handle links (text only: never markup).
import { html } from "./html.js";

const TOKEN = /([#@][\p{L}\p{N}_]+)/u;

export function Caption({ text }) {
  const parts = (text || "").split(TOKEN);
  return html`<p class="caption">${parts.map((part, i) => {
    if (i % 2 === 0) return part;
    const name = part.slice(1);
    return part[0] === "#"
      ? html`<a href=${`/tag/${encodeURIComponent(name.toLowerCase())}`}>${part}</a>`
      : html`<a href=${`/@${encodeURIComponent(name.toLowerCase())}`}>${part}</a>`;
  })}</p>`;
}
