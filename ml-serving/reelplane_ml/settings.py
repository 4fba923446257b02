"""ml-serving settings (`REELPLANE_*` variables): real-time signals, the
embedded recommender and its micro-batcher. The model's own tunables live in
`reelplane_ml.config`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from reelplane.settings import SECTION_CONFIG


class SignalSettings(BaseSettings):
    """How the `engagement` consumer keeps users' recent history, seen filters
    and per-video real-time statistics in the cache."""

    model_config = SECTION_CONFIG

    rec_history_cap: int = Field(
        100, ge=10, le=1000, description="Events kept per user's recent history. Default 100"
    )
    rec_history_ttl_s: int = Field(
        30 * 86400, ge=60, description="A user's recent history expires after, s. Default 30 d"
    )
    rec_seen_bits: int = Field(
        1 << 16,
        ge=1 << 10,
        le=1 << 24,
        description="Bits of each user's seen filter (a Bloom filter in a cache bitset; "
        "65,536 bits keep false positives under 1% up to ~6,800 videos). Default 65536",
    )
    rec_seen_hashes: int = Field(
        7, ge=1, le=16, description="Hash functions of the seen filter. Default 7"
    )
    rec_seen_ttl_s: int = Field(
        14 * 86400, ge=60, description="A seen filter expires after, s. Default 14 d"
    )
    rec_fast_skip_run: int = Field(
        3,
        ge=1,
        le=20,
        description="This many fast skips in a row is a strong signal (cached candidates "
        "are dropped). Default 3",
    )
    rec_stats_window_min: int = Field(
        5, ge=1, le=60, description="Per-minute velocity is averaged over this many minutes. 5"
    )
    rec_stats_refresh_s: float = Field(
        1.0, gt=0, le=60, description="How often a replica refreshes its stats snapshot, s. 1"
    )


class EmbeddedSettings(BaseSettings):
    """The in-process recommender `reelplane dev` runs (the same core as Ray Serve)."""

    model_config = SECTION_CONFIG

    rec_batch_max_size: int = Field(
        32, ge=1, le=1024, description="Requests per micro-batch at most. Default 32"
    )
    rec_batch_wait_s: float = Field(
        0.0,
        ge=0,
        le=1,
        description="How long a micro-batch waits to fill once its first request is in, s. "
        "Default 0: a batch takes what is queued and starts (one batch runs at a time, so "
        "batches still grow with load; a wait only delayed a lone request)",
    )
    rec_candidates_ttl_s: float = Field(
        300,
        ge=0,
        description="How long a user's retrieved candidates are cached, s (a strong signal "
        "drops them sooner; 0: never cached). Default 300",
    )
    rec_catalogue_poll_s: float = Field(
        0.25,
        gt=0,
        le=60,
        description="How often a replica reads new and deleted videos' features, s (an idle "
        "poll is one indexed query that finds nothing). Default 0.25",
    )


class ServeSettings(BaseSettings):
    """The Ray Serve application (`reelplane_ml.serve:app`)."""

    model_config = SECTION_CONFIG

    rec_serve_consumers: bool = Field(
        True,
        description="The ingress replicas run the `engagement` signals and `videos` features "
        "consumers (one consumer group: partitions are shared out). Default true",
    )
