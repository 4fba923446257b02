"""Feed: Following (hybrid fan-out) and For You (candidates, ranking, diversity, page cache)."""
