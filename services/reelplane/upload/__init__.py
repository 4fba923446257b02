"""Upload service: tus 1.0 resumable uploads, SHA-256 dedup, source validation,
video metadata and playback (manifests, thumbnails, byte-range object serving).

Pure rules live in `tus`, `metadata`, `probe` and `playback`; `engine` does the
I/O (object store, relational store, bus) and `api` holds the thin handlers.
"""
