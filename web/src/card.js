// One full-height video card: the player, tap to pause, double tap to like,
// the creator and caption, the action rail and the progress bar.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { attach, setBufferAhead } from "./player.js";
import { track } from "./watch.js";
import { muted, setMuted } from "./sound.js";
import { useStore } from "./store.js";
import { Icon } from "./icons.js";
import { Caption } from "./caption.js";
import { Progress } from "./progress.js";
import { ago, count } from "./format.js";
import { follows, learnFollow, toggleFollow } from "./follows.js";
import { session } from "./session.js";
import { setLike } from "./likes.js";
import { toast } from "./toast.js";

const DOUBLE_TAP_MS = 280;

function useTaps(onSingle, onDouble) {
  const state = useRef({ last: 0, timer: null });
  return (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    const s = state.current;
    const now = performance.now();
    if (now - s.last < DOUBLE_TAP_MS) {
      clearTimeout(s.timer);
      s.last = 0;
      onDouble(event);
    } else {
      s.last = now;
      s.timer = setTimeout(onSingle, DOUBLE_TAP_MS);
    }
  };
}

function Rail({ item, update, onComments }) {
  const me = useStore(session);
  const following = useStore(follows)[item.creator.user_id];
  const mine = me && me.user_id === item.creator.user_id;
  const share = () => {
    const url = `${location.origin}/v/${item.video_id}`;
    (navigator.clipboard ? navigator.clipboard.writeText(url) : Promise.reject())
      .then(() => toast("Link copied"))
      .catch(() => toast(url));
  };
  return html`<div class="rail">
    <div class="avatar-wrap">
      <a class="avatar" href=${`/@${item.creator.handle}`} aria-label=${`@${item.creator.handle}'s profile`}>
        ${item.creator.handle.slice(0, 1).toUpperCase()}</a>
      ${!mine && following !== true && html`<button class="follow-plus" aria-label=${`Follow @${item.creator.handle}`}
        onClick=${() => toggleFollow(item.creator.user_id)}><${Icon} name="plus" size=${14} /></button>`}
    </div>
    <button class="rail-btn like" aria-label="Like" aria-pressed=${item.viewer_liked ? "true" : "false"}
      onClick=${() => setLike(item, !item.viewer_liked, update)}>
      <${Icon} name="heart" /><span class="n" data-count="likes">${count(item.counters.likes)}</span></button>
    <button class="rail-btn" aria-label="Comments" data-comments-button onClick=${onComments}>
      <${Icon} name="comment" /><span class="n" data-count="comments">${count(item.counters.comments)}</span></button>
    <button class="rail-btn" aria-label="Copy link" onClick=${share}><${Icon} name="share" /><span class="n">Share</span></button>
    <div class="rail-views" aria-label="Views"><${Icon} name="eye" size=${18} /><span class="n" data-count="views">${count(item.counters.views)}</span></div>
  </div>`;
}

export function Card({ item, active, attached, update, onComments }) {
  const videoRef = useRef(null);
  const [paused, setPaused] = useState(false);
  const [hearts, setHearts] = useState([]);
  const [failed, setFailed] = useState(false);
  const [landscape, setLandscape] = useState(false);
  const isMuted = useStore(muted);

  useEffect(() => {
    if (!attached || !item.playback_url) return undefined;
    return attach(videoRef.current, item.playback_url, {
      buffer_s: active ? 30 : 6,
      onFatal: () => setFailed(true),
    });
  }, [attached, item.playback_url]);

  useEffect(() => {
    const video = videoRef.current;
    if (!active) {
      video.pause();
      return undefined;
    }
    learnFollow(item.creator.user_id);
    setBufferAhead(video, 30);
    setPaused(false);
    const play = () =>
      video.play().catch((error) => {
        if (error.name === "NotAllowedError" && !video.muted) {
          muted.set(true); // sound refused by the browser: play muted, show the chip
          video.muted = true;
          video.play().catch(() => setPaused(true));
        }
      });
    play();
    const stop = track(video, item.video_id);
    return () => {
      stop();
      video.pause();
    };
  }, [active]);

  useEffect(() => {
    if (videoRef.current) videoRef.current.muted = isMuted;
  }, [isMuted]);

  const togglePause = () => {
    const video = videoRef.current;
    if (video.paused) {
      video.play().catch(() => {});
      setPaused(false);
    } else {
      video.pause();
      setPaused(true);
    }
  };
  const heart = (event) => {
    const box = event.currentTarget.getBoundingClientRect();
    const id = performance.now();
    const spot = { id, x: event.clientX - box.left, y: event.clientY - box.top };
    setHearts((all) => [...all, spot]);
    setTimeout(() => setHearts((all) => all.filter((h) => h.id !== id)), 900);
    setLike(item, true, update);
  };
  const onTap = useTaps(togglePause, heart);

  return html`<section class="card" data-video-id=${item.video_id} data-active=${active ? "true" : "false"}
      aria-roledescription="video" aria-label=${`Video by @${item.creator.handle}`}>
    <video class=${`video${landscape ? " landscape" : ""}`} ref=${videoRef}
      poster=${item.thumbnail_url || undefined} loop playsinline muted=${isMuted} preload="auto"
      onLoadedMetadata=${(e) => setLandscape(e.target.videoWidth > e.target.videoHeight)}></video>
    <div class="tap" onPointerUp=${onTap} data-tap></div>
    ${hearts.map((h) => html`<div class="burst" key=${h.id} style=${{ left: `${h.x}px`, top: `${h.y}px` }}>
      <${Icon} name="heart" size=${96} /></div>`)}
    ${paused && active && html`<div class="paused-icon" aria-hidden="true"><${Icon} name="play" size=${72} /></div>`}
    ${failed && html`<div class="failed">Couldn't play this video. Scroll on to the next one.</div>`}
    ${isMuted && active && html`<button class="sound-chip" onClick=${() => setMuted(false)}>
      <${Icon} name="muted" size=${18} /> Tap for sound</button>`}
    <div class="meta">
      <a class="handle" href=${`/@${item.creator.handle}`}>@${item.creator.handle}</a>
      ${item.creator.display_name && html`<span class="display-name">${item.creator.display_name}</span>`}
      <span class="when">· ${ago(item.ready_at)}</span>
      <${Caption} text=${item.caption} />
    </div>
    <${Rail} item=${item} update=${update} onComments=${onComments} />
    <${Progress} videoRef=${videoRef} />
  </section>`;
}
