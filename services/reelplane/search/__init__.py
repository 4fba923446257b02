"""The search service: an index of ready videos and users kept by an indexer
(a consumer of `videos`, `accounts` and `graph`), and the search API."""
