"""The runtime images' Python layers, assembled as docker/*.Dockerfile assembles
them, and run: no container engine here builds the images, so this checks what
a build would put in them.

- `services`, `operator` and `gpu-workers` copy the same source roots and run
  the same `uv sync --frozen --no-editable` (no extras): every service of the
  chart must become ready from that environment alone, on the embedded
  defaults, and the local harness must not be in it.
- `ml-serving` installs `uv export --frozen --extra serve` into Ray's Python and
  puts the copied source roots on PYTHONPATH: the Serve application must build
  in both topologies, and its consumers import, without the dev or train extras.

The build context is what git tracks, less the image's `.dockerignore`; the
Dockerfiles' COPY lines name the roots. What the images' apt packages give
(ffmpeg) is checked in tests/unit/test_images.py.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from tests.helpers import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
UV = ROOT / ".venv-uv" / "bin" / "uv"


def _copied_roots(dockerfile: Path) -> list[str]:
    """The repository paths the Dockerfile's COPY lines take from the context."""
    roots: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words[1:-1] if not w.startswith("--")]
        roots += sources
    return roots


def _ignored(path: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("**/"):
            name = pattern[3:]
            if any(fnmatch.fnmatch(part, name) for part in path.split("/")):
                return True
        elif path == pattern or path.startswith(pattern + "/"):
            return True
    return False


def build_context(image: str, dest: Path) -> Path:
    """The files `docker build -f docker/<image>.Dockerfile .` would copy in."""
    dockerfile = DOCKER / f"{image}.Dockerfile"
    ignore = (DOCKER / f"{image}.Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    roots = _copied_roots(dockerfile)
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--", *roots],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, tracked):
        if _ignored(rel, patterns) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


def uv(*args: str, cwd: Path, env: dict[str, str]) -> None:
    assert UV.exists(), f"{UV} is missing: ./reelplane installs it"
    done = subprocess.run(
        [str(UV), *args, "--quiet"], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _uv_env(project_venv: Path | None = None) -> dict[str, str]:
    """uv on this Python, never a download; `uv sync` into `project_venv`."""
    env = {**os.environ, "UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}
    if project_venv is not None:
        env["UV_PROJECT_ENVIRONMENT"] = str(project_venv)
    return env


def _runtime_env(home: Path, path_dirs: list[Path]) -> dict[str, str]:
    """A clean environment, as a container starts with: no REELPLANE_* of this
    session, no virtualenv, the image's PATH (system binaries stay: the images
    install ffmpeg)."""
    return {
        "HOME": str(home),
        "PATH": ":".join([*map(str, path_dirs), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
    }


@pytest.fixture(scope="module")
def services_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/opt/reelplane of the services image (the operator's and gpu-workers'
    build the same one)."""
    base = tmp_path_factory.mktemp("services-image")
    src = build_context("services", base / "src")
    venv = base / "venv"
    uv("sync", "--frozen", "--no-editable", cwd=src, env=_uv_env(venv))
    return venv


def test_the_services_layer_is_the_locked_runtime_without_the_harness(
    services_layer: Path,
) -> None:
    site = next((services_layer / "lib").glob("python3.*/site-packages"))
    assert (site / "reelplane" / "cli.py").is_file()
    assert not (site / "reelplane" / "infra").exists()  # .dockerignore keeps it out
    assert not (site / "reelplane_ml").exists()  # ml-serving is its own image
    for dev_only in ("pytest", "ruff", "mypy", "torch", "ray"):
        assert not any(site.glob(f"{dev_only}-*.dist-info")), dev_only


@pytest.fixture
def chart_services() -> list[str]:
    values = yaml.safe_load((ROOT / "charts/reelplane/values.yaml").read_text())
    return list(values["services"])


@contextlib.contextmanager
def serving(venv: Path, service: str, data: Path) -> Iterator[str]:
    """`reelplane serve <service>` from the layer, on the embedded defaults in `data`."""
    port = free_port()
    env = {
        **_runtime_env(data, [venv / "bin"]),
        "REELPLANE_DATA_DIR": str(data),
        "REELPLANE_HTTP_PORT": str(port),
    }
    with (data / "server.log").open("w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [str(venv / "bin" / "reelplane"), "serve", service],
            cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_every_chart_service_becomes_ready_from_the_services_layer(
    services_layer: Path, chart_services: list[str], tmp_path: Path
) -> None:
    assert "upload" in chart_services and "gateway" in chart_services
    for service in chart_services:
        data = tmp_path / service
        data.mkdir()
        with serving(services_layer, service, data) as url:
            status, body = 0, ""
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    r = httpx.get(f"{url}/readyz", timeout=5)
                    status, body = r.status_code, r.text
                    if status == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            log = (data / "server.log").read_text()[-1500:]
            assert status == 200, f"{service}: /readyz {status} {body[:500]}\n{log}"
            assert service in httpx.get(f"{url}/readyz", timeout=5).json()["services"]


def test_the_ml_serving_layer_builds_the_serve_app_without_dev_or_train_extras(
    tmp_path: Path,
) -> None:
    src = build_context("ml-serving", tmp_path / "src")
    requirements = tmp_path / "requirements.txt"
    env = _uv_env()
    uv("export", "--frozen", "--extra", "serve", "--no-emit-project", "-o", str(requirements),
       cwd=src, env=env)  # fmt: skip
    venv = tmp_path / "ray-python"
    uv("venv", str(venv), cwd=src, env=env)
    uv("pip", "install", "--python", str(venv / "bin" / "python"), "--require-hashes",
       "-r", str(requirements), cwd=src, env=env)  # fmt: skip
    site = next((venv / "lib").glob("python3.*/site-packages"))
    for absent in ("torch", "pytest", "implicit"):
        assert not any(site.glob(f"{absent}-*.dist-info")), absent
    # the Dockerfile's PYTHONPATH: the copied source roots, the harness left out
    roots = ["services", "operator", "gpu-workers", "ml-serving"]
    assert not (src / "services/reelplane/infra").exists()
    probe = (
        "from reelplane_ml.serve import AppArgs, app\n"
        "for topology in ('fused', 'split'):\n"
        "    print(topology, type(app(AppArgs(topology=topology))).__name__)\n"
        "from reelplane_ml.embedded import consume_features, consume_signals\n"
        "from reelplane_ml.catalogue import compute_features\n"
    )
    env = {
        **_runtime_env(tmp_path, [venv / "bin"]),
        "PYTHONPATH": ":".join(str(src / r) for r in roots),
    }
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["fused", "Application", "split", "Application"]
