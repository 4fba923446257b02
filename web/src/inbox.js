// The inbox: grouped notifications ("ada and 3 others liked your video"),
// newest first, paged by cursor; opening it marks everything read, and it
// reloads its first page when a notification arrives live.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { useStore } from "./store.js";
import { ago } from "./format.js";
import { Icon } from "./icons.js";
import { Poster } from "./posters.js";
import { arrivals, markAllRead } from "./notifications.js";

const ICONS = { like: "heart", comment: "comment", follow: "user-plus", post: "play" };

/** The group's line, each named actor's handle a link to their profile. */
function Line({ group }) {
  const parts = [];
  let rest = group.summary;
  for (const actor of group.actors) {
    const at = actor.handle ? rest.indexOf(actor.handle) : -1;
    if (at < 0) continue;
    parts.push(rest.slice(0, at));
    parts.push(html`<a class="who" href=${`/@${encodeURIComponent(actor.handle)}`}>${actor.handle}</a>`);
    rest = rest.slice(at + actor.handle.length);
  }
  parts.push(rest);
  return html`<p class="note-line">${parts}</p>`;
}

function Item({ group }) {
  const first = group.actors[0];
  const target = group.video_id
    ? `/v/${group.video_id}`
    : first && first.handle ? `/@${encodeURIComponent(first.handle)}` : null;
  return html`<li class=${`note${group.unread ? " unread" : ""}`} data-kind=${group.kind} data-unread=${group.unread}>
    <span class=${`note-icon ${group.kind}`}><${Icon} name=${ICONS[group.kind] || "bell"} size=${20} /></span>
    <div class="note-body">
      <${Line} group=${group} />
      ${group.kind === "comment" && group.text && html`<p class="note-text">${group.text}</p>`}
      <p class="note-when">${ago(group.at)}</p>
    </div>
    ${group.video_id
      ? html`<a class="note-thumb" href=${target} aria-label="Open the video"><${Poster} id=${group.video_id} /></a>`
      : target && html`<a class="button note-open" href=${target}>View</a>`}
  </li>`;
}

export function InboxPage() {
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(undefined);
  const [error, setError] = useState(null);
  const tick = useStore(arrivals);
  const loading = useRef(false);

  const load = async (cursor) => {
    if (loading.current) return;
    loading.current = true;
    try {
      const page = await api(`/v1/notifications${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`);
      setItems((all) => (cursor ? [...all, ...page.items] : page.items));
      setNext(page.next_cursor);
      setError(null);
      if (!cursor && page.unread_count > 0) await markAllRead();
    } catch (e) {
      setError(e.message);
    } finally {
      loading.current = false;
    }
  };
  // First page on open, and again whenever one arrives while it is open.
  useEffect(() => {
    load(null);
  }, [tick]);

  return html`<main class="page narrow inbox">
    <h1>Notifications</h1>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <ul class="notes" data-notes>${items.map((g) => html`<${Item} key=${g.id} group=${g} />`)}</ul>
    ${next === null && !items.length && html`<p class="empty">Nothing yet. Likes, comments and new followers show up here.</p>`}
    ${next && html`<button class="link more" onClick=${() => load(next)}>Older notifications</button>`}
  </main>`;
}
