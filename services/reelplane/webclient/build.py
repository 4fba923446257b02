"""Assemble the browser client: pinned npm packages plus `web/src`, into one
content-hashed folder the gateway serves with immutable caching.

    <static>/index.html          the page (import map inlined; served uncached)
    <static>/build.json          {"build": <hash>, "importmap_sha256": <CSP hash>}
    <static>/<hash>/src/...      the app's modules (relative imports keep working)
    <static>/<hash>/vendor/...   preact, htm, hls.js, tus-js-client

Everything here is idempotent: `npm ci` runs only when the lock file changed,
and an unchanged build is not rewritten.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import reelplane
from reelplane.errors import ConfigError

#: Import specifier -> file inside node_modules (ES modules, mapped by the import map).
ES_MODULES = {
    "preact": "preact/dist/preact.mjs",
    "preact/hooks": "preact/hooks/dist/hooks.mjs",
    "htm": "htm/dist/htm.module.js",
    "hls.js": "hls.js/dist/hls.min.mjs",
}
#: Served name -> file inside node_modules: classic scripts (tus-js-client's
#: ES build has bare imports of its own dependencies; its UMD build has none)
#: and hls.js's worker (loaded by URL, so CSP needs no `blob:` workers).
CLASSIC_FILES = {
    "tus.min.js": "tus-js-client/dist/tus.min.js",
    "hls.worker.js": "hls.js/dist/hls.worker.js",
}
IMPORTMAP_MARK = "<!--importmap-->"
BASE_MARK = "%BUILD%"


@dataclass(frozen=True)
class Build:
    """An assembled client: its folder, content hash and the import map's CSP hash."""

    static_dir: Path
    build: str
    importmap_sha256: str

    @property
    def index_html(self) -> Path:
        return self.static_dir / "index.html"


def checkout_root() -> Path:
    """The source checkout this runs from (the folder holding `web/`)."""
    return Path(reelplane.__file__).resolve().parents[2]


def default_static_dir() -> Path:
    return checkout_root() / ".cache" / "web" / "static"


def default_npm_dir() -> Path:
    return checkout_root() / ".cache" / "web" / "npm"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ensure_node_modules(web_dir: Path, cache_dir: Path) -> Path:
    """`npm ci --ignore-scripts` of web/package-lock.json into cache_dir (once
    per lock file: a stamp holds the lock's hash). Returns node_modules."""
    lock = web_dir / "package-lock.json"
    if not lock.is_file():
        raise ConfigError("web/package-lock.json", f"missing in {web_dir}")
    want = _sha256(lock.read_bytes() + (web_dir / "package.json").read_bytes())
    stamp = cache_dir / ".installed"
    modules = cache_dir / "node_modules"
    if stamp.is_file() and stamp.read_text().strip() == want and modules.is_dir():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError("npm", "not found: install Node.js 20+ with npm to build the web client")
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(web_dir / name, cache_dir / name)
    done = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cache_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]
        raise ConfigError("web/package-lock.json", f"npm ci failed: {tail[0]}")
    stamp.write_text(want)
    return modules


def _files(web_dir: Path, modules: Path) -> dict[str, bytes]:
    """Relative served path -> bytes, for everything under the build folder."""
    files: dict[str, bytes] = {}
    src = web_dir / "src"
    for path in sorted(src.rglob("*")):
        if path.is_file():
            files[f"src/{path.relative_to(src).as_posix()}"] = path.read_bytes()
    for spec, rel in ES_MODULES.items():
        files[f"vendor/{spec.replace('/', '-')}.mjs"] = (modules / rel).read_bytes()
    for name, rel in CLASSIC_FILES.items():
        files[f"vendor/{name}"] = (modules / rel).read_bytes()
    return files


def import_map(build: str) -> str:
    """The page's import map: bare specifiers to the vendored modules."""
    imports = {spec: f"/app/{build}/vendor/{spec.replace('/', '-')}.mjs" for spec in ES_MODULES}
    return json.dumps({"imports": imports}, indent=1, sort_keys=True)


def csp_hash(script_text: str) -> str:
    """The CSP source that allows one inline script with this exact text."""
    digest = hashlib.sha256(script_text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def build_client(
    web_dir: Path | None = None, static_dir: Path | None = None, npm_dir: Path | None = None
) -> Build:
    """Fetch the pinned packages (into npm_dir, default `.cache/web/npm`) and
    assemble the client under static_dir (default `.cache/web/static` of the
    checkout); returns the build."""
    web_dir = web_dir or checkout_root() / "web"
    static_dir = static_dir or default_static_dir()
    modules = ensure_node_modules(web_dir, npm_dir or default_npm_dir())
    files = _files(web_dir, modules)
    template = (web_dir / "index.html").read_text(encoding="utf-8")
    digest = hashlib.sha256(template.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    build = digest.hexdigest()[:16]
    mapping = import_map(build)
    page = template.replace(IMPORTMAP_MARK, f'<script type="importmap">{mapping}</script>').replace(
        BASE_MARK, build
    )
    result = Build(static_dir, build, csp_hash(mapping))
    target = static_dir / build
    manifest = static_dir / "build.json"
    if not target.is_dir():
        staging = static_dir / f".{build}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        staging.rename(target)
    (static_dir / ".index.html.partial").write_text(page, encoding="utf-8")
    (static_dir / ".index.html.partial").replace(result.index_html)
    (static_dir / ".build.json.partial").write_text(
        json.dumps({"build": build, "importmap_sha256": result.importmap_sha256})
    )
    (static_dir / ".build.json.partial").replace(manifest)
    # Older builds go: a page loaded before keeps working until its next reload.
    for old in static_dir.iterdir():
        if old.is_dir() and old.name != build and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return result


def load_build(static_dir: Path) -> Build | None:
    """The build assembled under static_dir, or None when there is none."""
    try:
        info = json.loads((static_dir / "build.json").read_text())
    except (OSError, ValueError):
        return None
    build = Build(static_dir, str(info["build"]), str(info["importmap_sha256"]))
    if not build.index_html.is_file() or not (static_dir / build.build).is_dir():
        return None
    return build
