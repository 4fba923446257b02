"""Fixtures of the ingestion tests: test media (made once per session) and the
platform settings, parametrized over the embedded and the real backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reelplane.infra.harness import Harness
from reelplane.settings import Settings
from tests.conftest import BACKENDS, embedded_settings, real_url
from tests.upload_support import make_bad_files, make_big_video, make_video


@dataclass
class Media:
    """Test videos, generated with ffmpeg on first use and kept for the session."""

    folder: Path
    _made: dict[str, Path] = field(default_factory=dict)

    def _get(self, name: str, make: object) -> Path:
        if name not in self._made:
            assert callable(make)
            self._made[name] = make(self.folder / f"{name}.mp4")
        return self._made[name]

    @property
    def big(self) -> Path:
        """~12+ MiB, several 5 MiB chunks."""
        return self._get("big", make_big_video)

    @property
    def small(self) -> Path:
        return self._get("small", lambda p: make_video(p, width=640, height=360, seconds=2))

    @property
    def landscape_1080p(self) -> Path:
        return self._get(
            "landscape_1080p", lambda p: make_video(p, width=1920, height=1080, kbps=1500)
        )

    @property
    def portrait_1080x1920(self) -> Path:
        return self._get(
            "portrait_1080x1920", lambda p: make_video(p, width=1080, height=1920, kbps=1500)
        )

    @property
    def sd_480p(self) -> Path:
        return self._get("sd_480p", lambda p: make_video(p, width=854, height=480))

    @property
    def long_1080p(self) -> Path:
        """Long enough (4 s at 30 fps, 1080p) to kill a worker in the middle."""
        return self._get(
            "long_1080p",
            lambda p: make_video(p, width=1920, height=1080, seconds=4, fps=30, kbps=2000),
        )

    def bad(self) -> dict[str, Path]:
        return make_bad_files(self.folder / "bad", self.small)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("media"))


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def platform_settings(
    backend_kind: str, request: pytest.FixtureRequest, harness: Harness, tmp_path: Path
) -> Settings:
    """Embedded backends, or MariaDB + Kafka + Redis + S3 from the harness."""
    if backend_kind == "embedded":
        return embedded_settings(tmp_path)
    return embedded_settings(
        tmp_path,
        database_url=request.getfixturevalue("mariadb_test_url"),
        bus_url=real_url(harness, "kafka"),
        cache_url=real_url(harness, "redis"),
        objects_url=real_url(harness, "s3"),
    )
