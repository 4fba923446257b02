"""vegeta, an HTTP load generator in Go: the recommender serving benchmark's
load (`e2e/bench/recommender_serving.py`), so that the load generator costs
the server's 2 cores as little as it can. Not a harness server: the benchmark
runs `vegeta attack` and `vegeta report` itself.

Built once with `go install` from the Go module proxy into `cache/vegeta/bin`.
"""

from __future__ import annotations

from pathlib import Path

from reelplane.infra.harness import default_root, go_install

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
"""Pinned release (the stock Go toolchain builds it)."""


def install_vegeta(root: Path | None = None) -> Path:
    """The vegeta binary at the pinned version, built on first use; its path."""
    return go_install(
        "vegeta",
        VEGETA_MODULE,
        VEGETA_VERSION,
        (root or default_root()) / "cache" / "vegeta" / "bin",
        ldflags=f"-X main.Version={VEGETA_VERSION}",
    )


if __name__ == "__main__":  # pragma: no cover - manual use: python -m reelplane.infra.vegeta
    print(install_vegeta())
