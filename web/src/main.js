// The app: top bar, routes, and the feeds each route plays.
import { render } from "preact";
import { useMemo } from "preact/hooks";
import { html } from "./html.js";
import { api } from "./api.js";
import { route } from "./router.js";
import { session } from "./session.js";
import { useStore } from "./store.js";
import { Feed } from "./feed.js";
import { AuthPage } from "./auth.js";
import { UploadPage } from "./upload.js";
import { PeoplePage, ProfilePage } from "./profile.js";
import { Icon } from "./icons.js";
import { Toasts } from "./toast.js";
import { InboxPage } from "./inbox.js";
import { HashtagPage, SearchPage } from "./search.js";
import { SettingsPage } from "./settings.js";
import { live, unread } from "./notifications.js";

const page = (path) => (cursor) =>
  api(cursor ? `${path}${path.includes("?") ? "&" : "?"}cursor=${encodeURIComponent(cursor)}` : path);

/** A feed that starts with one video (a deep link), then goes on with `rest`. */
function startingWith(videoId, rest) {
  return async (cursor) => {
    if (cursor === null) {
      const [video, more] = await Promise.all([api(`/v1/videos/${videoId}`), rest(null)]);
      const first = {
        video_id: video.id,
        playback_url: video.playback && video.playback.master_playlist_url,
        thumbnail_url: video.playback && video.playback.poster_url,
        caption: video.caption,
        hashtags: video.hashtags,
        duration_ms: video.duration_ms,
        ready_at: video.ready_at,
        creator: video.creator,
        counters: video.counters,
        viewer_liked: video.viewer_liked,
      };
      return { items: [first, ...more.items.filter((i) => i.video_id !== videoId)], next_cursor: more.next_cursor };
    }
    return rest(cursor);
  };
}

/** The bell: a link to the inbox with the unread count, kept live. */
function Bell() {
  const n = useStore(unread);
  const connected = useStore(live);
  const label = n ? `Notifications, ${n} unread` : "Notifications";
  return html`<a class="icon-link bell" href="/inbox" aria-label=${label} data-live=${connected ? "true" : "false"}>
    <${Icon} name="bell" />
    ${n ? html`<span class="badge" data-unread=${n} aria-hidden="true">${n > 99 ? "99+" : n}</span>` : null}
  </a>`;
}

function Tabs({ path, me }) {
  const tab = (href, label) =>
    html`<a class=${`tab${path === href ? " current" : ""}`} href=${href}
      aria-current=${path === href ? "page" : undefined}>${label}</a>`;
  return html`<nav class="topbar">
    <a class="brand" href="/" aria-label="Reelplane home"><${Icon} name="play" size=${20} />Reelplane</a>
    <div class="tabs">${tab("/", "For You")}${tab("/following", "Following")}</div>
    <div class="account">
      <a class="icon-link" href="/search" aria-label="Search"><${Icon} name="search" /></a>
      <a class="icon-link" href="/upload" aria-label="Upload"><${Icon} name="upload" /></a>
      ${me
        ? html`<${Bell} /><a class="icon-link" href=${`/@${me.handle}`} aria-label="My profile"><${Icon} name="user" /></a>`
        : html`<a class="button primary" href="/login">Log in</a>`}
    </div>
  </nav>`;
}

function Routes({ path, me }) {
  const [pathname] = path.split("?");
  const feeds = useMemo(() => ({
    foryou: page(me ? "/v1/feed/foryou" : "/v1/feed/public"),
    following: page("/v1/feed/following"),
  }), [me && me.token]);
  let m;
  if (pathname === "/login") return html`<${AuthPage} mode="login" />`;
  if (pathname === "/signup") return html`<${AuthPage} mode="signup" />`;
  if (pathname === "/upload") {
    return me ? html`<${UploadPage} />` : html`<${AuthPage} mode="login" />`;
  }
  if (pathname === "/following") {
    if (!me) return html`<${AuthPage} mode="login" />`;
    return html`<${Feed} key="following" load=${feeds.following}
      empty="Follow creators to see their videos here. For You has plenty to start with." />`;
  }
  if ((m = pathname.match(/^\/v\/([0-9a-f]+)$/))) {
    const load = startingWith(m[1], feeds.foryou);
    return html`<${Feed} key=${`v-${m[1]}`} load=${load} empty="This video is not available." />`;
  }
  if ((m = pathname.match(/^\/@([^/]+)\/video\/([0-9a-f]+)$/))) {
    return html`<${ProfileFeed} handle=${decodeURIComponent(m[1])} videoId=${m[2]} />`;
  }
  if ((m = pathname.match(/^\/@([^/]+)\/(followers|following)$/))) {
    return html`<${PeoplePage} handle=${decodeURIComponent(m[1])} which=${m[2]} />`;
  }
  if ((m = pathname.match(/^\/@([^/]+)$/))) return html`<${ProfilePage} handle=${decodeURIComponent(m[1])} />`;
  if ((m = pathname.match(/^\/tag\/([^/]+)$/))) {
    const tag = decodeURIComponent(m[1]).replace(/^#/, "");
    return html`<${HashtagPage} key=${`tag-${tag}`} tag=${tag} />`;
  }
  if (pathname === "/search") return html`<${SearchPage} query=${path.slice(pathname.length)} />`;
  if (pathname === "/settings") {
    return me ? html`<${SettingsPage} key=${me.user_id} />` : html`<${AuthPage} mode="login" />`;
  }
  if (pathname === "/inbox") return me ? html`<${InboxPage} />` : html`<${AuthPage} mode="login" />`;
  if (pathname === "/") {
    return html`<${Feed} key=${me ? "foryou" : "public"} load=${feeds.foryou}
      empty="Nothing to watch yet. Upload the first video!" />`;
  }
  return html`<main class="page narrow"><h1>Not found</h1><p><a href="/">Back to the feed</a></p></main>`;
}

function ProfileFeed({ handle, videoId }) {
  // Opened at the tile's position: it plays that video, and scrolls both ways.
  const load = useMemo(() => page(`/v1/users/${encodeURIComponent(handle)}/videos?limit=50`), [handle]);
  return html`<${Feed} key=${`profile-${handle}`} load=${load} startId=${videoId} empty="No videos." />`;
}

function App() {
  const path = useStore(route);
  const me = useStore(session);
  return html`<div class="app">
    <${Tabs} path=${path.split("?")[0]} me=${me} />
    <${Routes} path=${path} me=${me} />
    <${Toasts} />
  </div>`;
}

render(html`<${App} />`, document.getElementById("app"));
