// Search as you type: videos, users and hashtags (GET /v1/search), debounced,
// with the query and tab kept in the URL; and a hashtag's page (GET
// /v1/hashtags/{tag}).
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { navigate } from "./router.js";
import { count } from "./format.js";
import { Icon } from "./icons.js";
import { Poster } from "./posters.js";

const TYPES = [
  ["videos", "Videos"],
  ["users", "Users"],
  ["hashtags", "Hashtags"],
];
const DEBOUNCE_MS = 250;

/** The page's own URL: the query when there is one, the tab when not the first. */
function searchPath(q, type) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (type !== "videos") params.set("type", type);
  const query = params.toString();
  return query ? `/search?${query}` : "/search";
}

/** Paged results of `path` (null: nothing to load); `more()` loads the next page. */
function usePaged(path) {
  const [state, setState] = useState({ items: [], next: undefined, error: null, path: null });
  const seq = useRef(0);
  const fetchPage = (cursor) => {
    const mine = ++seq.current;
    const sep = path.includes("?") ? "&" : "?";
    return api(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path).then(
      (page) => {
        if (mine !== seq.current) return; // an older query answered late
        setState((s) => ({
          items: cursor ? [...s.items, ...page.items] : page.items,
          next: page.next_cursor,
          error: null,
          path,
        }));
      },
      (e) => mine === seq.current && setState((s) => ({ ...s, next: null, error: e.message, path })),
    );
  };
  useEffect(() => {
    if (path === null) {
      seq.current++;
      setState({ items: [], next: undefined, error: null, path: null });
      return;
    }
    fetchPage(null);
  }, [path]);
  return { ...state, more: () => state.next && fetchPage(state.next) };
}

function VideoRow({ item }) {
  return html`<li class="result video-result" data-result="video">
    <a class="result-thumb" href=${`/v/${item.video_id}`} aria-hidden="true" tabindex="-1"><${Poster} id=${item.video_id} /></a>
    <div class="result-body">
      <a class="result-title" href=${`/v/${item.video_id}`}>${item.caption || "Untitled video"}</a>
      <p class="muted"><a href=${`/@${encodeURIComponent(item.handle)}`}>@${item.handle}</a>
        <span class="stat" data-count="likes"><${Icon} name="heart" size=${14} /> ${count(item.likes)}<span
          class="sr-only"> ${item.likes === 1 ? "like" : "likes"}</span></span>
        <span class="stat" data-count="views"><${Icon} name="play" size=${14} /> ${count(item.views)}<span
          class="sr-only"> ${item.views === 1 ? "view" : "views"}</span></span></p>
    </div>
  </li>`;
}

function UserRow({ item }) {
  return html`<li class="result" data-result="user">
    <a class="avatar" href=${`/@${encodeURIComponent(item.handle)}`} aria-hidden="true" tabindex="-1">${item.handle.slice(0, 1).toUpperCase()}</a>
    <div class="result-body">
      <a class="result-title" href=${`/@${encodeURIComponent(item.handle)}`}>@${item.handle}</a>
      <p class="muted">${item.display_name && html`${item.display_name} · `}${count(item.followers)} ${item.followers === 1 ? "follower" : "followers"}</p>
    </div>
  </li>`;
}

function TagRow({ item }) {
  return html`<li class="result" data-result="hashtag">
    <a class="tag-badge" href=${`/tag/${encodeURIComponent(item.tag)}`} aria-hidden="true" tabindex="-1"><${Icon} name="hash" size=${22} /></a>
    <div class="result-body">
      <a class="result-title" href=${`/tag/${encodeURIComponent(item.tag)}`}>#${item.tag}</a>
      <p class="muted">${count(item.videos)} ${item.videos === 1 ? "video" : "videos"}</p>
    </div>
  </li>`;
}

const ROWS = { videos: VideoRow, users: UserRow, hashtags: TagRow };
const KEYS = { videos: (i) => i.video_id, users: (i) => i.user_id, hashtags: (i) => i.tag };

export function SearchPage({ query }) {
  const params = new URLSearchParams(query);
  const type = TYPES.some(([t]) => t === params.get("type")) ? params.get("type") : "videos";
  const [text, setText] = useState(params.get("q") || "");
  const [q, setQ] = useState(text.trim());
  const input = useRef(null);
  useEffect(() => input.current && input.current.focus(), []);
  // Debounced: a request once typing pauses; the URL follows (without new history entries).
  useEffect(() => {
    const timer = setTimeout(() => setQ(text.trim()), DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [text]);
  useEffect(() => {
    const url = searchPath(q, type);
    if (location.pathname + location.search !== url) navigate(url, { replace: true });
  }, [q, type]);
  const results = usePaged(q ? `/v1/search?${new URLSearchParams({ q, type, limit: "20" })}` : null);
  const Row = ROWS[type];
  const settled = results.path !== null && results.next !== undefined;
  return html`<main class="page narrow search">
    <form class="search-form" role="search" onSubmit=${(e) => { e.preventDefault(); setQ(text.trim()); }}>
      <${Icon} name="search" size=${20} />
      <input ref=${input} type="search" aria-label="Search" placeholder="Search videos, people, #tags"
        value=${text} maxlength="200" enterkeyhint="search" autocomplete="off"
        onInput=${(e) => setText(e.currentTarget.value)} />
    </form>
    <div class="search-tabs" role="tablist" aria-label="What to search">
      ${TYPES.map(([t, label]) => html`<a role="tab" class=${`tab${t === type ? " current" : ""}`}
        aria-selected=${t === type ? "true" : "false"}
        href=${searchPath(text.trim(), t)}>${label}</a>`)}
    </div>
    ${results.error && html`<p class="error" role="alert">${results.error}</p>`}
    <ul class="results" data-results=${type} aria-live="polite">
      ${results.items.map((item) => html`<${Row} key=${KEYS[type](item)} item=${item} />`)}
    </ul>
    ${!q && html`<p class="empty">Find videos by their words, people by handle, or #hashtags.</p>`}
    ${q && settled && !results.items.length && !results.error && html`<p class="empty">No ${type} match “${q}”.</p>`}
    ${results.next && html`<button class="link more" onClick=${results.more}>More results</button>`}
  </main>`;
}

export function HashtagPage({ tag }) {
  const results = usePaged(`/v1/hashtags/${encodeURIComponent(tag)}?limit=30`);
  const settled = results.next !== undefined;
  return html`<main class="page hashtag">
    <header class="hashtag-head">
      <span class="tag-badge big"><${Icon} name="hash" size=${36} /></span>
      <h1>#${tag}</h1>
      ${settled && !results.error && html`<p class="muted">${results.items.length}${results.next ? "+" : ""} ${results.items.length === 1 ? "video" : "videos"}</p>`}
    </header>
    ${results.error && html`<p class="error" role="alert">${results.error}</p>`}
    <ul class="grid" data-grid>
      ${results.items.map((item) => html`<li key=${item.video_id}>
        <a class="tile" href=${`/v/${item.video_id}`} data-tile aria-label=${item.caption || "Video"}>
          <${Poster} id=${item.video_id} />
          <span class="tile-views"><${Icon} name="play" size=${14} /> ${count(item.views)}</span>
        </a></li>`)}
    </ul>
    ${settled && !results.items.length && !results.error && html`<p class="empty">No videos with #${tag} yet.</p>`}
    ${results.next && html`<button class="link more" onClick=${results.more}>More videos</button>`}
  </main>`;
}
