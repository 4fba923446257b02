"""The upload engine: tus uploads streamed into the object store, then hashed,
probed, deduplicated and announced. The I/O half of the upload service; the
rules it applies live in `upload.tus`, `upload.metadata` and `media.probe`.

An upload is one S3 multipart upload of its source object, its progress
recorded in its `uploads` row. One module per concern:

- `operations`: `UploadEngine`, the tus operations (create, append,
  terminate) each under the upload's lease;
- `lease`: the write lease on an upload (one writer at a time, lingering
  between a client's PATCHes), on `reelplane.leases.RowLease`;
- `write`: one PATCH's bytes, from the body to the row (`PatchWrite`);
- `parts`: cutting a PATCH into parts and streaming them to the store;
- `body`: the PATCH body as it arrives; `hashing`: the SHA-256 on the way;
- `accept`: the accept path (probe, reject, dedup, announce);
- `concat`: tus concatenation; `janitor`: the janitor's sweep;
- `rows`: the `uploads` row as an `Upload`.
"""

from reelplane.upload.engine.body import RequestBody
from reelplane.upload.engine.operations import UploadEngine
from reelplane.upload.engine.parts import part_plan
from reelplane.upload.engine.rows import Upload

__all__ = ["RequestBody", "Upload", "UploadEngine", "part_plan"]
