"""Media rules and tools shared by the upload service and the transcode worker:
reading a probe (`probe`), running ffprobe (`ffprobe`), byte ranges and
content types of stored media (`ranges`)."""
