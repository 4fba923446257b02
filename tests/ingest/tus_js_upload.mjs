// Upload one file with tus-js-client under Node (test tooling for the upload service).
// Usage: node tus_js_upload.mjs '<json options>'
//   {endpoint, token, file, chunkSize, uploadUrl?, metadata?}
// Prints one JSON line: {ok, url, error, status, resumedFrom, patches}.
import fs from "node:fs";
import { createRequire } from "node:module";

const options = JSON.parse(process.argv[2]);
const require = createRequire(options.nodeModules + "/");
const tus = require("tus-js-client");

const result = { ok: false, url: null, error: null, status: null, resumedFrom: null, patches: [] };
const size = fs.statSync(options.file).size;
const upload = new tus.Upload(fs.createReadStream(options.file), {
  endpoint: options.endpoint,
  uploadUrl: options.uploadUrl || null,
  uploadSize: size,
  chunkSize: options.chunkSize,
  retryDelays: null,
  storeFingerprintForResuming: false,
  headers: { Authorization: `Bearer ${options.token}` },
  metadata: options.metadata || {},
  onAfterResponse(req, res) {
    if (req.getMethod() === "HEAD") {
      result.resumedFrom = Number(res.getHeader("Upload-Offset"));
    }
    if (req.getMethod() === "PATCH") {
      result.patches.push([Number(req.getHeader("Upload-Offset")), res.getStatus()]);
    }
  },
  onError(error) {
    result.error = String(error);
    result.status = error.originalResponse ? error.originalResponse.getStatus() : null;
    result.url = upload.url;
    console.log(JSON.stringify(result));
    process.exit(0);
  },
  onSuccess() {
    result.ok = true;
    result.url = upload.url;
    console.log(JSON.stringify(result));
    process.exit(0);
  },
});
upload.start();
