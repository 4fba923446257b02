// Resumable upload with tus-js-client: 5 MiB chunks, retries, resumes after
// going offline (on `online`) and after a reload (the fingerprint in
// localStorage), and the server's refusal reason in words.
import { session } from "./session.js";
import { bytes } from "./format.js";

export const CHUNK_BYTES = 5 * 1024 * 1024;

function reasonOf(error, maxBytes) {
  const response = error.originalResponse;
  if (!response) return navigator.onLine === false ? null : `The upload failed: ${error.message}`;
  const status = response.getStatus();
  let problem = {};
  try {
    problem = JSON.parse(response.getBody() || "{}");
  } catch {
    // not a problem document
  }
  if (status === 413) return `The file is larger than the ${bytes(maxBytes)} limit.`;
  if (status === 401) return "Your session ended: log in again to upload.";
  return problem.detail || problem.title || `The server refused the upload (HTTP ${status}).`;
}

/** Start (or resume) uploading `file`; `on` gets progress, state changes,
 * the video id when done, and a refusal reason. Returns controls. */
export function startUpload(file, { caption, hashtags, maxBytes }, on) {
  const { Upload } = window.tus;
  let waiting = false;
  const upload = new Upload(file, {
    endpoint: "/v1/uploads",
    chunkSize: CHUNK_BYTES,
    retryDelays: [0, 1000, 3000, 5000, 10000],
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    metadata: { filename: file.name, filetype: file.type || "video/mp4", caption, hashtags },
    headers: { Authorization: `Bearer ${session.get()?.token}` },
    onShouldRetry(error, attempt, options) {
      const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
      if (status === 429) return true; // rate limited: wait and go on
      if (status >= 400 && status < 500 && status !== 409 && status !== 423) return false;
      return navigator.onLine !== false;
    },
    onProgress: (sent, total) => on.progress(sent, total),
    onSuccess: () => {
      removeEventListener("online", resume);
      removeEventListener("offline", offline);
      on.done(upload.url.split("/").pop());
    },
    onError: (error) => {
      const reason = reasonOf(error, maxBytes);
      if (reason === null) {
        waiting = true;
        on.state("waiting");
      } else {
        removeEventListener("online", resume);
        removeEventListener("offline", offline);
        on.refused(reason);
      }
    },
  });
  function resume() {
    if (waiting) {
      waiting = false;
      on.state("uploading");
      upload.start();
    }
  }
  function offline() {
    waiting = true;
    on.state("waiting");
  }
  addEventListener("online", resume);
  addEventListener("offline", offline);
  upload.findPreviousUploads().then((previous) => {
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      on.state("resuming");
    } else on.state("uploading");
    upload.start();
  });
  return {
    pause: () => upload.abort(),
    resume: () => upload.start(),
    cancel: () => {
      removeEventListener("online", resume);
      removeEventListener("offline", offline);
      return upload.abort(true);
    },
  };
}
