// A thin progress bar; click or drag to seek.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { clock } from "./format.js";

export function Progress({ videoRef }) {
  const [fraction, setFraction] = useState(0);
  const [hover, setHover] = useState(null);
  const bar = useRef(null);
  useEffect(() => {
    const video = videoRef.current;
    if (!video) return undefined;
    const update = () => setFraction(video.duration ? video.currentTime / video.duration : 0);
    video.addEventListener("timeupdate", update);
    return () => video.removeEventListener("timeupdate", update);
  }, [videoRef.current]);
  const at = (event) => {
    const box = bar.current.getBoundingClientRect();
    return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
  };
  const seek = (event) => {
    const video = videoRef.current;
    if (!video || !video.duration) return;
    video.currentTime = at(event) * video.duration;
    setFraction(at(event));
  };
  const down = (event) => {
    event.stopPropagation();
    bar.current.setPointerCapture(event.pointerId);
    seek(event);
  };
  const move = (event) => {
    const video = videoRef.current;
    if (video && video.duration) setHover({ x: at(event), t: at(event) * video.duration });
    if (event.buttons === 1) seek(event);
  };
  return html`<div class="progress" ref=${bar} role="slider" aria-label="Seek"
      aria-valuemin="0" aria-valuemax="100" aria-valuenow=${Math.round(fraction * 100)}
      onPointerDown=${down} onPointerMove=${move} onPointerLeave=${() => setHover(null)}
      onClick=${(e) => e.stopPropagation()}>
    <div class="progress-fill" style=${{ transform: `scaleX(${fraction})` }}></div>
    ${hover && html`<div class="progress-tip" style=${{ left: `${hover.x * 100}%` }}>${clock(hover.t)}</div>`}
  </div>`;
}
