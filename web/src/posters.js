// A video's poster (and details) by id, for lists whose items carry only ids
// (search results, hashtag pages, notifications): one request per video, cached.
import { html } from "./html.js";
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.js";

const cache = new Map();

export function videoDetails(id) {
  if (!cache.has(id)) {
    const pending = api(`/v1/videos/${encodeURIComponent(id)}`).catch(() => {
      cache.delete(id);
      return null;
    });
    cache.set(id, pending);
  }
  return cache.get(id);
}

/** The poster of video `id`, or an empty tile while it loads (or when there is none). */
export function Poster({ id, label = "" }) {
  const [src, setSrc] = useState(null);
  useEffect(() => {
    let live = true;
    setSrc(null);
    videoDetails(id).then((v) => {
      if (live && v && v.playback && v.playback.poster_url) setSrc(v.playback.poster_url);
    });
    return () => {
      live = false;
    };
  }, [id]);
  return src ? html`<img src=${src} alt=${label} loading="lazy" />` : null;
}
