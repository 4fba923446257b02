// A profile: counts, follow/unfollow, a 3-column grid of 9:16 tiles, and the
// followers/following lists.
import { html } from "./html.js";
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.js";
import { session } from "./session.js";
import { useStore } from "./store.js";
import { count } from "./format.js";
import { follows, setFollowKnown, toggleFollow } from "./follows.js";
import { logOut } from "./auth.js";
import { Icon } from "./icons.js";

function useProfile(handle) {
  const [profile, setProfile] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setProfile(null);
    setError(null);
    api(`/v1/users/${encodeURIComponent(handle)}`)
      .then((p) => {
        setProfile(p);
        if (p.viewer_follows !== null) setFollowKnown(p.user_id, p.viewer_follows);
      })
      .catch((e) => setError(e.message));
  }, [handle]);
  return [profile, error, setProfile];
}

function Header({ profile, setProfile }) {
  const me = useStore(session);
  const following = useStore(follows)[profile.user_id];
  const mine = me && me.user_id === profile.user_id;
  const toggle = async () => {
    const before = Boolean(following);
    const after = await toggleFollow(profile.user_id);
    if (after !== null && after !== before) {
      setProfile({ ...profile, followers: profile.followers + (after ? 1 : -1) });
    }
  };
  return html`<header class="profile-head">
    <div class="avatar big">${profile.handle.slice(0, 1).toUpperCase()}</div>
    <h1>@${profile.handle}</h1>
    ${profile.display_name && html`<p class="display-name">${profile.display_name}</p>`}
    <p class="counts">
      <a href=${`/@${profile.handle}/following`}><b data-count="following">${count(profile.following)}</b> Following</a>
      <a href=${`/@${profile.handle}/followers`}><b data-count="followers">${count(profile.followers)}</b> Followers</a>
    </p>
    ${mine
      ? html`<div class="profile-actions">
          <a class="button" href="/settings"><${Icon} name="settings" size=${18} />Settings</a>
          <button onClick=${logOut}>Log out</button>
        </div>`
      : html`<button class=${following ? "" : "primary"} onClick=${toggle}
          aria-pressed=${following ? "true" : "false"}>${following ? "Following" : "Follow"}</button>`}
  </header>`;
}

function Grid({ handle }) {
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(undefined);
  const load = (cursor) =>
    api(`/v1/users/${encodeURIComponent(handle)}/videos${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`)
      .then((page) => {
        setItems((all) => (cursor ? [...all, ...page.items] : page.items));
        setNext(page.next_cursor);
      })
      .catch(() => setNext(null));
  useEffect(() => {
    setItems([]);
    load(null);
  }, [handle]);
  return html`<section>
    <ul class="grid" data-grid>
      ${items.map((item) => html`<li key=${item.video_id}>
        <a class="tile" href=${`/@${handle}/video/${item.video_id}`} data-tile aria-label=${item.caption || "Video"}>
          ${item.thumbnail_url && html`<img src=${item.thumbnail_url} alt="" loading="lazy" />`}
          <span class="tile-views"><${Icon} name="play" size=${14} /> ${count(item.counters.views)}</span>
        </a></li>`)}
    </ul>
    ${next === null && !items.length && html`<p class="empty">No videos yet.</p>`}
    ${next && html`<button class="link" onClick=${() => load(next)}>More videos</button>`}
  </section>`;
}

export function ProfilePage({ handle }) {
  const [profile, error, setProfile] = useProfile(handle);
  if (error) return html`<main class="page"><p class="error">${error}</p></main>`;
  if (!profile) return html`<main class="page"><p class="muted">Loading…</p></main>`;
  return html`<main class="page profile">
    <${Header} profile=${profile} setProfile=${setProfile} />
    <${Grid} handle=${profile.handle} />
  </main>`;
}

export function PeoplePage({ handle, which }) {
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(undefined);
  const load = (cursor) =>
    api(`/v1/users/${encodeURIComponent(handle)}/${which}${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`)
      .then((page) => {
        setItems((all) => (cursor ? [...all, ...page.items] : page.items));
        setNext(page.next_cursor);
      })
      .catch(() => setNext(null));
  useEffect(() => {
    setItems([]);
    load(null);
  }, [handle, which]);
  return html`<main class="page narrow">
    <h1><a href=${`/@${handle}`}>@${handle}</a> · ${which === "followers" ? "Followers" : "Following"}</h1>
    <ul class="people">
      ${items.map((u) => html`<li key=${u.user_id}><a href=${`/@${u.handle}`}>@${u.handle}</a>
        ${u.display_name && html` <span class="muted">${u.display_name}</span>`}</li>`)}
    </ul>
    ${next === null && !items.length && html`<p class="empty">Nobody yet.</p>`}
    ${next && html`<button class="link" onClick=${() => load(next)}>More</button>`}
  </main>`;
}
