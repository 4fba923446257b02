"""Gateway: accounts and sessions, rate limits, CORS, ownership checks."""
