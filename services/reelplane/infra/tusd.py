"""tusd, the reference tus server: the peer the ingest benchmark measures the
upload service against (`e2e/bench/ingest.py`). Not a harness server: the
benchmark starts and stops its own instances, with their own flags.

Built once with `go install` from the Go module proxy into `cache/tusd/bin`.
"""

from __future__ import annotations

from pathlib import Path

from reelplane.infra.harness import default_root, go_install

TUSD_MODULE = "github.com/tus/tusd/v2"
TUSD_VERSION = "v2.9.1"
"""Pinned release (its go.mod asks for Go 1.25; the stock Go 1.26 builds it)."""

GO_TOOLCHAIN: str | None = None
"""Set to e.g. "go1.27.3" if a future pin needs a newer Go than the installed one."""


def install_tusd(root: Path | None = None) -> Path:
    """The tusd binary at the pinned version, built on first use; its path."""
    return go_install(
        "tusd",
        f"{TUSD_MODULE}/cmd/tusd",
        TUSD_VERSION,
        (root or default_root()) / "cache" / "tusd" / "bin",
        ldflags=f"-X {TUSD_MODULE}/cmd/tusd/cli.VersionName={TUSD_VERSION}",
        toolchain=GO_TOOLCHAIN,
    )


if __name__ == "__main__":  # pragma: no cover - manual use: python -m reelplane.infra.tusd
    print(install_tusd())
