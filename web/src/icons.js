// Inline SVG icons (no icon font, no emoji: servers have no emoji fonts).
import { html } from "./html.js";

const PATHS = {
  heart:
    "M12 21s-7.5-4.6-9.6-9.2C.9 8.4 3 4.5 6.8 4.5c2.1 0 3.6 1.1 5.2 3 1.6-1.9 3.1-3 5.2-3 3.8 0 5.9 3.9 4.4 7.3C19.5 16.4 12 21 12 21z",
  comment:
    "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
  share: "M14 4l7 7-7 7v-4c-5 0-8.5 1.5-11 5 1-5 4-10 11-11V4z",
  play: "M7 4v16l13-8z",
  pause: "M6 4h4v16H6zM14 4h4v16h-4z",
  muted: "M3 9h4l5-4v14l-5-4H3zM16 9l5 6M21 9l-5 6",
  sound: "M3 9h4l5-4v14l-5-4H3zM16 8a5 5 0 0 1 0 8M18.5 5.5a9 9 0 0 1 0 13",
  plus: "M12 5v14M5 12h14",
  check: "M5 12l5 5 9-10",
  up: "M6 15l6-6 6 6",
  down: "M6 9l6 6 6-6",
  close: "M6 6l12 12M18 6L6 18",
  upload: "M12 16V4M6 10l6-6 6 6M4 20h16",
  user: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 21c0-4 4-6 8-6s8 2 8 6",
  home: "M3 11l9-7 9 7v9a1 1 0 0 1-1 1h-5v-6H9v6H4a1 1 0 0 1-1-1z",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
  eye: "M1 12s4-7 11-7 11 7 11 7-4 7-11 7S1 12 1 12zM12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z",
  bell: "M6 16V11a6 6 0 0 1 12 0v5l2 2H4zM10 21h4",
  search: "M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14zM16 16l5 5",
  hash: "M5 9h15M4 15h15M10 3L8 21M16 3l-2 18",
  settings: "M4 7h9M17 7h3M4 17h3M11 17h9M15 5v4M9 15v4",
  "user-plus": "M10 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21c0-4 4-6 8-6s8 2 8 6M19 6v6M16 9h6",
};
const FILLED = new Set(["heart", "comment", "share", "play", "pause"]);

export function Icon({ name, size = 24, filled }) {
  const fill = filled ?? FILLED.has(name);
  return html`<svg class="icon" width=${size} height=${size} viewBox="0 0 24 24" aria-hidden="true"
    fill=${fill ? "currentColor" : "none"} stroke="currentColor" stroke-width=${fill ? 0 : 2}
    stroke-linecap="round" stroke-linejoin="round"><path d=${PATHS[name]} /></svg>`;
}
