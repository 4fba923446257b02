"""Transcode worker: ffmpeg ladder planning (pure) and the consumer of `uploads`."""
