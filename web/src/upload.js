// The upload page: pick or drop a file, caption and hashtags, checks before
// any byte is sent, progress with pause/resume, then transcoding until ready.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { bytes } from "./format.js";
import { setLeaveGuard } from "./router.js";
import { startUpload } from "./uploader.js";
import { Icon } from "./icons.js";

const VIDEO_EXTENSIONS = /\.(mp4|m4v|mov|webm|mkv)$/i;
const MAX_DURATION_S = 600;
const CAPTION_MAX = 2200;
const STATES = {
  uploading: "Uploading…",
  resuming: "Resuming where it stopped…",
  waiting: "Waiting for network…",
  paused: "Paused",
};

async function maxUploadBytes() {
  const response = await fetch("/v1/uploads", { method: "OPTIONS" });
  return Number(response.headers.get("Tus-Max-Size")) || Infinity;
}

function durationOf(file) {
  return new Promise((resolve) => {
    const video = document.createElement("video");
    const url = URL.createObjectURL(file);
    const done = (value) => {
      URL.revokeObjectURL(url);
      resolve(value);
    };
    video.preload = "metadata";
    video.onloadedmetadata = () => done(video.duration);
    video.onerror = () => done(null); // unreadable here: the server decides
    setTimeout(() => done(null), 5000);
    video.src = url;
  });
}

/** Why `file` is not a video we take (checked before any request), or null. */
function typeRefusal(file) {
  if (!(file.type.startsWith("video/") || VIDEO_EXTENSIONS.test(file.name))) {
    return `${file.name} is not a video: choose an MP4, MOV, WebM or MKV file.`;
  }
  if (file.size === 0) return `${file.name} is empty.`;
  return null;
}

/** Why `file` cannot be uploaded (size, duration), or null. */
async function refusal(file, maxBytes) {
  if (file.size > maxBytes) return `${file.name} is ${bytes(file.size)}; the limit is ${bytes(maxBytes)}.`;
  const duration = await durationOf(file);
  if (duration && duration > MAX_DURATION_S) {
    return `${file.name} lasts ${Math.round(duration / 60)} minutes; videos may last at most ${MAX_DURATION_S / 60} minutes.`;
  }
  return null;
}

function Processing({ videoId }) {
  const [video, setVideo] = useState(null);
  useEffect(() => {
    let stop = false;
    const poll = async () => {
      try {
        const v = await api(`/v1/videos/${videoId}`);
        setVideo(v);
        if (v.state === "ready" || v.state === "failed") return;
      } catch {
        // transient: poll again
      }
      if (!stop) setTimeout(poll, 1000);
    };
    poll();
    return () => {
      stop = true;
    };
  }, [videoId]);
  if (!video) return html`<p class="status">Uploaded. Waiting for processing…</p>`;
  if (video.state === "failed") {
    return html`<p class="error" role="alert">The video could not be processed: ${video.failure_reason}</p>`;
  }
  if (video.state === "ready") {
    return html`<p class="status ready" data-upload-ready>Your video is ready. <a href=${`/v/${videoId}`}>Watch it</a></p>`;
  }
  return html`<div class="status" data-processing>Processing… ${video.progress_pct}%
    <progress max="100" value=${video.progress_pct}></progress></div>`;
}

export function UploadPage() {
  const [file, setFile] = useState(null);
  const [caption, setCaption] = useState("");
  const [hashtags, setHashtags] = useState("");
  const [problem, setProblem] = useState(null);
  const [state, setState] = useState("idle");
  const [sent, setSent] = useState(0);
  const [videoId, setVideoId] = useState(null);
  const controls = useRef(null);
  const started = useRef(0);

  const busy = ["uploading", "resuming", "waiting", "paused", "checking"].includes(state);
  useEffect(() => {
    setLeaveGuard(busy ? "Your video is not uploaded yet. Leave this page?" : null);
  }, [busy]);
  useEffect(() => () => setLeaveGuard(null), []);

  const choose = (chosen) => {
    if (!chosen) return;
    setFile(chosen);
    setProblem(null);
    setState("idle");
    setSent(0);
  };
  const submit = async (event) => {
    event.preventDefault();
    if (!file) return;
    const wrongType = typeRefusal(file);
    if (wrongType) {
      setProblem(wrongType);
      setState("refused");
      return;
    }
    setState("checking");
    const maxBytes = await maxUploadBytes().catch(() => Infinity);
    const why = await refusal(file, maxBytes);
    if (why) {
      setProblem(why);
      setState("refused");
      return;
    }
    started.current = performance.now();
    controls.current = startUpload(file, { caption, hashtags, maxBytes }, {
      progress: (n) => setSent(n),
      state: setState,
      done: (id) => {
        setVideoId(id);
        setState("done");
      },
      refused: (reason) => {
        setProblem(reason);
        setState("refused");
      },
    });
  };
  const pct = file ? Math.floor((sent / file.size) * 100) : 0;
  const seconds = (performance.now() - started.current) / 1000;
  const speed = seconds > 0 ? sent / seconds : 0;
  return html`<main class="page narrow upload-page">
    <h1>Upload a video</h1>
    <form class="stack" onSubmit=${submit}>
      <label class="drop" onDragOver=${(e) => e.preventDefault()}
          onDrop=${(e) => { e.preventDefault(); choose(e.dataTransfer.files[0]); }}>
        <${Icon} name="upload" size=${40} />
        <span>${file ? `${file.name} (${bytes(file.size)})` : "Drop a video here or choose a file"}</span>
        <input type="file" accept="video/*" data-file disabled=${busy}
          onChange=${(e) => choose(e.target.files[0])} />
      </label>
      <label>Caption <span class="counter">${caption.length}/${CAPTION_MAX}</span>
        <textarea name="caption" maxlength=${CAPTION_MAX} rows="3" value=${caption} disabled=${busy}
          placeholder="Say something about it, #hashtags welcome"
          onInput=${(e) => setCaption(e.target.value)}></textarea></label>
      <label>Hashtags<input name="hashtags" value=${hashtags} disabled=${busy}
        placeholder="dance, city" onInput=${(e) => setHashtags(e.target.value)} /></label>
      ${problem && html`<p class="error" role="alert" data-upload-error>${problem}</p>`}
      ${state === "idle" || state === "refused"
        ? html`<button class="primary" disabled=${!file}>Upload</button>`
        : null}
    </form>
    ${busy && state !== "checking" && html`<section class="upload-progress" aria-live="polite">
      <p data-upload-state>${STATES[state]} ${pct}% · ${bytes(sent)} of ${bytes(file.size)}
        ${speed > 0 && state === "uploading" ? ` · ${bytes(speed)}/s` : ""}</p>
      <progress max="100" value=${pct}></progress>
      <div class="row">
        ${state === "paused"
          ? html`<button onClick=${() => { controls.current.resume(); setState("uploading"); }}>Resume</button>`
          : html`<button onClick=${() => { controls.current.pause(); setState("paused"); }}>Pause</button>`}
        <button onClick=${() => { controls.current.cancel(); setState("idle"); setSent(0); }}>Cancel</button>
      </div>
    </section>`}
    ${state === "done" && videoId && html`<${Processing} videoId=${videoId} />`}
  </main>`;
}
