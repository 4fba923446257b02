// Watch reporting for the recommender: played time per video (loops counted,
// seeks not), queued and sent as the API's watch events in batches, flushed
// when the page hides or goes away; one view once a video played ~1 s.
import { api } from "./api.js";
import { session } from "./session.js";

const pending = new Map(); // video_id -> {watched_ms, duration_ms}
const viewed = new Set();
let timer = null;

function send(videoId, body, keepalive) {
  api(`/v1/videos/${videoId}/watch`, { method: "POST", body, keepalive, retries: 0 }).catch(() => {});
}

export function flush({ keepalive = false } = {}) {
  clearTimeout(timer);
  timer = null;
  if (!session.get()) return pending.clear();
  for (const [videoId, body] of pending) send(videoId, body, keepalive);
  pending.clear();
}

function queue(videoId, watched_ms, duration_ms) {
  if (watched_ms < 250) return;
  const body = { watched_ms: Math.round(watched_ms) };
  if (duration_ms > 0) body.duration_ms = Math.round(duration_ms);
  const prior = pending.get(videoId);
  if (prior) body.watched_ms += prior.watched_ms;
  pending.set(videoId, body);
  if (!timer) timer = setTimeout(flush, 10000);
}

/** Track one video element while it is the active one; returns `stop()`,
 * which queues what was watched. */
export function track(video, videoId) {
  let last = video.currentTime;
  let watched = 0;
  let seeking = false;
  const onTime = () => {
    const now = video.currentTime;
    const duration = video.duration || 0;
    let delta = now - last;
    if (!seeking && delta < 0 && duration && last > duration - 1 && now < 1) {
      delta = duration - last + now; // looped: a rewatch
    }
    if (!seeking && delta > 0 && delta < 1.5) watched += delta;
    seeking = false;
    last = now;
    if (watched >= 1 && !viewed.has(videoId) && session.get()) {
      viewed.add(videoId);
      api(`/v1/videos/${videoId}/views`, { method: "POST", retries: 0 }).catch(() => {});
    }
  };
  const onSeek = () => {
    seeking = true;
  };
  const report = () => {
    queue(videoId, watched * 1000, (video.duration || 0) * 1000);
    watched = 0;
  };
  const onHide = () => {
    if (document.visibilityState === "hidden") {
      report();
      flush({ keepalive: true });
    }
  };
  const onPageHide = () => {
    report();
    flush({ keepalive: true });
  };
  video.addEventListener("timeupdate", onTime);
  video.addEventListener("seeking", onSeek);
  document.addEventListener("visibilitychange", onHide);
  addEventListener("pagehide", onPageHide);
  return () => {
    video.removeEventListener("timeupdate", onTime);
    video.removeEventListener("seeking", onSeek);
    document.removeEventListener("visibilitychange", onHide);
    removeEventListener("pagehide", onPageHide);
    report();
  };
}
