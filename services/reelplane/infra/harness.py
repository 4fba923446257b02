"""Process supervision for the real servers: install, start, readiness, stop.

Each server is a `Server` subclass (see `servers.py`). The harness keeps every
runtime file under one cache folder (default `<repo>/.cache`, override with
`REELPLANE_CACHE_DIR`): downloads and builds in `cache/<server>/`, data in
`data/<server>/`, pid files and logs in `run/`. `down` stops only processes whose
pid file this harness wrote, so it never touches a server somebody else started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


class HarnessError(RuntimeError):
    """A server could not be installed or started; the message says which and why."""


def _default_root() -> Path:
    env = os.environ.get("REELPLANE_CACHE_DIR")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "services").is_dir():
            return parent / ".cache"
    return Path.home() / ".cache" / "reelplane"


def progress(name: str, message: str) -> None:
    """One readable progress line on stderr, e.g. `[kafka] downloading jars`."""
    print(f"[{time.strftime('%H:%M:%S')}] [{name}] {message}", file=sys.stderr, flush=True)


def run_step(
    name: str,
    description: str,
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    show_every_s: float = 10.0,
) -> str:
    """Run one install step, echoing a heartbeat while it works; return its output.

    Long downloads and builds print `still working (N s)` with the last output
    line every `show_every_s` seconds, so a first start never looks hung.
    """
    progress(name, f"{description} ...")
    started = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    last_shown = started
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        chunk = proc.stdout.readline()
        if chunk:
            lines.append(chunk.rstrip("\n"))
            continue
        if proc.poll() is not None:
            rest = proc.stdout.read() or ""
            lines.extend(rest.splitlines())
            break
        now = time.monotonic()
        if now - last_shown >= show_every_s:
            tail = lines[-1][:120] if lines else ""
            progress(name, f"  still working ({now - started:.0f} s) {tail}")
            last_shown = now
        time.sleep(0.2)
    output = "\n".join(lines)
    if proc.returncode != 0:
        tail = "\n".join(lines[-30:])
        raise HarnessError(f"{name}: {description} failed (exit {proc.returncode}):\n{tail}")
    progress(name, f"{description}: done in {time.monotonic() - started:.0f} s")
    return output


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def apt_install(name: str, packages: Iterable[str], *, binaries: Iterable[str]) -> None:
    """Install Debian packages unless every binary is already on PATH (idempotent)."""
    missing = [b for b in binaries if shutil.which(b) is None and not Path(b).exists()]
    if not missing:
        return
    stamp = Path("/var/lib/apt/lists/lock")
    lists = Path("/var/lib/apt/lists")
    fresh = any(p.name.endswith("_Packages") for p in lists.glob("*")) if lists.is_dir() else False
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if not fresh or not stamp.exists():
        run_step(name, "apt-get update", ["apt-get", "update", "-q"], env=env)
    run_step(
        name,
        f"apt-get install {' '.join(packages)}",
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        env=env,
    )


def require_java_and_maven(name: str) -> None:
    """Java 17 and Maven, for the servers whose jars come from Maven Central."""
    apt_install(name, ["openjdk-17-jre-headless", "maven"], binaries=["java", "mvn"])


def fetch_maven_jars(
    name: str, cache_dir: Path, *, pom_xml: str, stamp: Path, main_jar: str, what: str
) -> Path:
    """Copy an artifact and its runtime dependencies from Maven Central into
    `cache_dir/lib` (once: `stamp` marks a complete copy). Returns the lib folder."""
    require_java_and_maven(name)
    lib_dir = cache_dir / "lib"
    if stamp.is_file():
        return lib_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    pom = cache_dir / "pom.xml"
    pom.write_text(pom_xml)
    # A half-finished earlier copy (or another version's jars) must not mix in.
    if lib_dir.exists():
        for old in lib_dir.iterdir():
            if old.is_file():
                old.unlink()
    run_step(
        name,
        f"fetching {what} jars from Maven Central",
        [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",  # Maven 3.8 colours even with -B
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib_dir}",
            "-DincludeScope=runtime",
        ],
        cwd=cache_dir,
    )
    if not (lib_dir / main_jar).is_file():
        raise HarnessError(f"{name}: mvn finished but {main_jar} is not in {lib_dir}")
    stamp.write_text(f"{what}\n")
    return lib_dir


def go_binary_name(package: str) -> str:
    """The name `go install` gives a package's binary: its path's last element,
    or the one before it when that is a major-version suffix (`.../vegeta/v12`
    builds `vegeta`)."""
    parts = package.rstrip("/").split("/")
    last = parts[-1]
    if len(parts) > 1 and last[:1] == "v" and last[1:].isdigit() and int(last[1:]) >= 2:
        return parts[-2]
    return last


def go_install(
    name: str,
    package: str,
    version: str,
    bin_dir: Path,
    *,
    ldflags: str = "",
    toolchain: str | None = None,
) -> Path:
    """`go install package@version` from the Go module proxy into `bin_dir`, once
    per pinned version (`<binary>.version` beside it records what was built).
    Returns the binary's path (named as Go names it: see `go_binary_name`)."""
    binary = bin_dir / go_binary_name(package)
    stamp = bin_dir / f"{binary.name}.version"
    if binary.is_file() and _read_text(stamp) == version:
        return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise HarnessError(f"{name}: the Go toolchain is needed to build {binary.name}")
    bin_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    env = {"GOBIN": str(bin_dir)}
    if toolchain:
        env["GOTOOLCHAIN"] = toolchain
    cmd = [go, "install"]
    if ldflags:
        cmd.append(f"-ldflags={ldflags}")
    run_step(
        name,
        f"go install {binary.name}@{version} (first time: a few minutes)",
        [*cmd, f"{package}@{version}"],
        env=env,
        show_every_s=15.0,
    )
    if not binary.is_file():
        raise HarnessError(f"{name}: go install left no binary at {binary}")
    stamp.write_text(version + "\n")
    return binary


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


@dataclass(frozen=True)
class ServerStatus:
    """What `reelplane infra status` prints for one server."""

    name: str
    address: str
    url: str
    state: str  # "ready", "stopped", "starting", "external" (ready, not started by us)
    pid: int | None


class Server(ABC):
    """One real server the harness can install, start and check.

    Subclasses are small: where the binaries come from, how to configure the
    data folder once, the command line, and a readiness probe that speaks the
    server's own protocol (an open port is not enough).
    """

    name: str
    host: str = "127.0.0.1"
    port: int
    start_timeout_s: float = 120.0

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache_dir = root / "cache" / self.name
        self.data_dir = root / "data" / self.name
        self.run_dir = root / "run"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    @abstractmethod
    def url(self) -> str:
        """The REELPLANE_* backend URL that reaches this server."""

    @property
    def setting(self) -> str:
        """The REELPLANE_* setting this server backs (for `infra env`)."""
        return ""

    @abstractmethod
    def install(self) -> None:
        """Fetch or build what is missing; idempotent and cached."""

    @abstractmethod
    def prepare(self) -> None:
        """Write config and initialise the data folder (only the first time)."""

    @abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]:
        """The command line and extra environment that run the server in the foreground."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers its own protocol."""

    def after_ready(self) -> None:  # noqa: B027 - optional hook
        """Optional: one-time setup once ready (e.g. create a bucket or a database)."""

    # -- process bookkeeping -------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def running_pid(self) -> int | None:
        """The pid we started, if that process is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A zombie of ours (not yet reaped) counts as gone.
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (FileNotFoundError, IndexError):
            return None
        return pid


class Harness:
    """Starts, checks and stops a set of `Server`s."""

    def __init__(self, servers: Sequence[Server], root: Path) -> None:
        self.root = root
        self.servers = {s.name: s for s in servers}

    def _select(self, names: Iterable[str] | None) -> list[Server]:
        if not names:
            return list(self.servers.values())
        chosen = []
        for n in names:
            if n not in self.servers:
                known = ", ".join(self.servers)
                raise HarnessError(f"unknown server {n!r}; known: {known}")
            chosen.append(self.servers[n])
        return chosen

    def status(self, names: Iterable[str] | None = None) -> list[ServerStatus]:
        out = []
        for s in self._select(names):
            pid = s.running_pid()
            ready = _safe_ready(s)
            state = {
                (True, True): "ready",
                (True, False): "external",
                (False, True): "starting",
                (False, False): "stopped",
            }[(ready, pid is not None)]
            out.append(ServerStatus(s.name, s.address, s.url, state, pid))
        return out

    def up(self, names: Iterable[str] | None = None) -> list[ServerStatus]:
        """Start every selected server that is not already answering (idempotent)."""
        selected = self._select(names)
        for s in selected:
            if _safe_ready(s):
                progress(s.name, f"already running on {s.address}")
                continue
            self.start(s.name)
        return self.status([s.name for s in selected])

    def start(self, name: str) -> None:
        s = self._select([name])[0]
        s.run_dir.mkdir(parents=True, exist_ok=True)
        s.cache_dir.mkdir(parents=True, exist_ok=True)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if s.running_pid() is None:
            s.install()
            s.prepare()
            if port_open(s.host, s.port):
                raise HarnessError(
                    f"{s.name}: port {s.address} is taken by a process that is not "
                    f"a ready {s.name}; stop it or set another port"
                )
            cmd, env = s.command()
            progress(s.name, f"starting on {s.address} (log: {s.log_file})")
            with s.log_file.open("ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **env},
                    cwd=s.data_dir,
                    start_new_session=True,
                )
            s.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + s.start_timeout_s
        started = time.monotonic()
        last_note = started
        while not _safe_ready(s):
            if s.running_pid() is None:
                raise HarnessError(
                    f"{s.name}: exited during start; last log lines:\n{_tail(s.log_file)}"
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{s.name}: not ready after {s.start_timeout_s:.0f} s; "
                    f"last log lines:\n{_tail(s.log_file)}"
                )
            if time.monotonic() - last_note > 10:
                progress(s.name, f"  waiting for readiness ({time.monotonic() - started:.0f} s)")
                last_note = time.monotonic()
            time.sleep(0.5)
        s.after_ready()
        progress(s.name, f"ready on {s.address} after {time.monotonic() - started:.1f} s")

    def stop(self, name: str, *, timeout_s: float = 30.0, hard: bool = False) -> bool:
        """Stop a server we started; `hard` sends SIGKILL at once (crash simulation)."""
        s = self._select([name])[0]
        pid = s.running_pid()
        if pid is None:
            s.pid_file.unlink(missing_ok=True)
            return False
        progress(s.name, f"stopping pid {pid}{' (SIGKILL)' if hard else ''}")
        _signal_group(pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while s.running_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if s.running_pid() is not None:
            _signal_group(pid, signal.SIGKILL)
            while s.running_pid() is not None:
                time.sleep(0.1)
        s.pid_file.unlink(missing_ok=True)
        return True

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop only what this harness started; return the names stopped."""
        return [s.name for s in self._select(names) if self.stop(s.name)]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _safe_ready(s: Server) -> bool:
    try:
        return s.ready()
    except Exception:
        return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


default_root = _default_root
