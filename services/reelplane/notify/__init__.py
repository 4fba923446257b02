"""notify: per-user notification logs, live WebSocket push and digests."""
