// Playback: hls.js (full build: the audio is a separate rendition) wherever
// MSE exists, native HLS only without it; ABR starts from the last measured
// bandwidth instead of the lowest rung on every new video.
import Hls from "hls.js";

const BANDWIDTH_KEY = "reelplane.bandwidth";
const workerPath = new URL("../vendor/hls.worker.js", import.meta.url).href;
const live = new Set();

function lastBandwidth() {
  const value = Number(localStorage.getItem(BANDWIDTH_KEY));
  return value > 0 ? value : undefined;
}

/** Attach `url` to `video`; `buffer_s` bounds the forward buffer (small for
 * the preloaded next video). Returns a function that detaches it. */
export function attach(video, url, { buffer_s = 30, onFatal } = {}) {
  if (Hls.isSupported()) {
    const estimate = lastBandwidth();
    const hls = new Hls({
      workerPath,
      capLevelToPlayerSize: true,
      maxBufferLength: buffer_s,
      backBufferLength: 10,
      startLevel: -1,
      ...(estimate ? { abrEwmaDefaultEstimate: estimate, testBandwidth: false } : {}),
    });
    let recovered = false;
    hls.on(Hls.Events.FRAG_LOADED, () => {
      const bw = hls.bandwidthEstimate;
      if (Number.isFinite(bw) && bw > 0) localStorage.setItem(BANDWIDTH_KEY, String(Math.round(bw)));
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
        recovered = true;
        hls.recoverMediaError();
      } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        setTimeout(() => hls.startLoad(), 1000);
      } else if (onFatal) onFatal(data);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    live.add(hls);
    video.__hls = hls;
    return () => {
      live.delete(hls);
      hls.destroy();
      delete video.__hls;
      video.removeAttribute("src");
      video.load();
    };
  }
  video.src = url; // Safari on iOS: no MSE, native HLS
  return () => {
    video.removeAttribute("src");
    video.load();
  };
}

/** Let the preloaded video buffer as much as the active one once it plays. */
export function setBufferAhead(video, buffer_s) {
  if (video.__hls) video.__hls.config.maxBufferLength = buffer_s;
}

// A test hook: how many hls.js instances are alive.
window.__reelplane = Object.assign(window.__reelplane || {}, { liveHls: () => live.size });

// Only one video ever plays: a video that starts pauses every other one. The
// event is dispatched after play() returned, so a video paused again since
// (the feed moved on twice in a row) must not pause the one playing now.
document.addEventListener(
  "play",
  (event) => {
    if (event.target.paused) return;
    for (const other of document.querySelectorAll("video")) {
      if (other !== event.target && !other.paused) other.pause();
    }
  },
  true,
);
