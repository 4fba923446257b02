"""Go builds of the local Kubernetes control plane's binaries.

Everything is built from the Go module proxy into `cache/k8s/bin/`, each group
of binaries once per pinned version (a stamp file records what was built):

- kube-apiserver, kube-controller-manager, kube-scheduler and kubectl, in one
  `go build` through a *wrapper module*: `k8s.io/kubernetes` requires its
  staging modules (`k8s.io/api`, `k8s.io/client-go`, ...) at `v0.0.0` and
  replaces them with local folders, so neither `go install` nor a plain
  `require` works. The wrapper requires `k8s.io/kubernetes vX.Y.Z` and replaces
  each staging module with its published `v0.Y.Z`; the list is read from the
  release's own go.mod, so a new release needs only a new pin.
- etcd, through a scratch module for the same reason (its go.mod replaces its
  sibling modules with local paths).
- the KWOK controller and helm, with plain `go install`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reelplane.infra.harness import HarnessError, progress, run_step

KUBERNETES_VERSION = "v1.37.2"
"""kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (Go 1.26)."""

ETCD_VERSION = "v3.6.16"
"""etcd server; kube-apiserver needs >= 3.5.13 (watch progress requests)."""

KWOK_VERSION = "v0.8.0"
"""KWOK controller: fake Nodes and Pod lifecycles without kubelets (Go 1.26)."""

HELM_VERSION = "v3.22.0"
"""Helm CLI for users and e2e tests."""

GO_TOOLCHAIN: str | None = None
"""Set to e.g. "go1.27.3" if a future pin asks for a newer Go than the installed one."""

KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
WRAPPER_MODULE = "reelplane.local/k8s-binaries"
_STRIP_LDFLAGS = "-s -w"


@dataclass(frozen=True)
class Binaries:
    """Paths of every binary the local control plane uses."""

    bin_dir: Path

    def path(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def etcd(self) -> Path:
        return self.path("etcd")

    @property
    def kube_apiserver(self) -> Path:
        return self.path("kube-apiserver")

    @property
    def kube_controller_manager(self) -> Path:
        return self.path("kube-controller-manager")

    @property
    def kube_scheduler(self) -> Path:
        return self.path("kube-scheduler")

    @property
    def kubectl(self) -> Path:
        return self.path("kubectl")

    @property
    def kwok(self) -> Path:
        return self.path("kwok")

    @property
    def helm(self) -> Path:
        return self.path("helm")


# -- pure rendering ---------------------------------------------------------------
def staging_version(kubernetes_version: str) -> str:
    """The published tag of the staging modules for a release: v1.37.2 -> v0.37.2."""
    match = re.fullmatch(r"v1\.(\d+)\.(\d+)", kubernetes_version)
    if not match:
        raise ValueError(f"not a Kubernetes release tag: {kubernetes_version!r}")
    return f"v0.{match.group(1)}.{match.group(2)}"


def staging_modules(kubernetes_gomod: str) -> list[str]:
    """The staging modules that a release of k8s.io/kubernetes requires at v0.0.0
    and replaces with `./staging/...` (parsed from that release's go.mod).

    A module that is only replaced but never required (e.g. sample-controller)
    is left out: it is not in the build graph, and some are not published.
    """
    replaced = set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M))
    required = set(
        re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+v0\.0\.0\s*(?://.*)?$", kubernetes_gomod, re.M)
    )
    return sorted(replaced & required)


def go_version_of(gomod: str) -> str:
    """The `go` directive of a go.mod (e.g. "1.26.0")."""
    match = re.search(r"^go\s+(\S+)\s*$", gomod, re.M)
    if not match:
        raise ValueError("go.mod has no go directive")
    return match.group(1)


def render_kubernetes_wrapper_gomod(
    kubernetes_version: str, modules: Sequence[str], go_version: str
) -> str:
    """go.mod of the wrapper module that builds k8s.io/kubernetes commands."""
    published = staging_version(kubernetes_version)
    lines = [
        f"module {WRAPPER_MODULE}",
        "",
        f"go {go_version}",
        "",
        f"require k8s.io/kubernetes {kubernetes_version}",
        "",
        "// k8s.io/kubernetes replaces these with its own folders; use the published tags.",
        "replace (",
        *(f"\t{m} => {m} {published}" for m in modules),
        ")",
        "",
    ]
    return "\n".join(lines)


def render_tools_go(packages: Sequence[str]) -> str:
    """A build-tagged file importing the commands, so `go mod tidy` keeps their deps."""
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def render_etcd_gomod(etcd_version: str, go_version: str) -> str:
    """go.mod of the scratch module that builds the etcd server."""
    return (
        "module reelplane.local/etcd-binary\n\n"
        f"go {go_version}\n\n"
        f"require go.etcd.io/etcd/server/v3 {etcd_version}\n"
    )


def kubernetes_ldflags(kubernetes_version: str, build_date: str) -> str:
    """-ldflags that strip symbols and stamp the release version into the binaries,
    as the release build does (so `kubectl version` and the API's /version say
    v1.Y.Z instead of v0.0.0-master, which charts' kubeVersion checks reject)."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", kubernetes_version)
    if not match:
        raise ValueError(f"not a Kubernetes release tag: {kubernetes_version!r}")
    values = {
        "gitVersion": kubernetes_version,
        "gitMajor": match.group(1),
        "gitMinor": match.group(2),
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = [_STRIP_LDFLAGS]
    for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


# -- building -------------------------------------------------------------------------
class K8sBuilder:
    """Builds (once per pinned version) every binary of the local control plane."""

    name = "k8s"

    def __init__(self, root: Path) -> None:
        self.cache_dir = root / "cache" / "k8s"
        self.bin_dir = self.cache_dir / "bin"
        self.src_dir = self.cache_dir / "src"
        self.binaries = Binaries(self.bin_dir)

    def _stamp(self, group: str) -> Path:
        return self.bin_dir / f".{group}.version"

    def _built(self, group: str, version: str, names: Sequence[str]) -> bool:
        stamp = _read(self._stamp(group))
        return stamp == version and all(self.binaries.path(n).is_file() for n in names)

    def missing(self) -> list[str]:
        """Groups of binaries not yet built at their pinned version."""
        out = []
        for group, version, names in self._groups():
            if not self._built(group, version, names):
                out.append(f"{group}@{version}")
        return out

    @staticmethod
    def _groups() -> list[tuple[str, str, Sequence[str]]]:
        return [
            ("etcd", ETCD_VERSION, ["etcd"]),
            ("kubernetes", KUBERNETES_VERSION, KUBERNETES_COMMANDS),
            ("kwok", KWOK_VERSION, ["kwok"]),
            ("helm", HELM_VERSION, ["helm"]),
        ]

    def ensure(self) -> Binaries:
        """Build whatever is missing; idempotent (a no-op once all stamps match)."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        steps = {
            "etcd": self._build_etcd,
            "kubernetes": self._build_kubernetes,
            "kwok": self._build_kwok,
            "helm": self._build_helm,
        }
        for group, version, names in self._groups():
            if self._built(group, version, names):
                continue
            started = time.monotonic()
            self._stamp(group).unlink(missing_ok=True)
            steps[group]()
            for n in names:
                if not self.binaries.path(n).is_file():
                    raise HarnessError(f"{self.name}: building {group} left no {n} binary")
            self._stamp(group).write_text(version + "\n")
            progress(self.name, f"{group} {version} built in {time.monotonic() - started:.0f} s")
        return self.binaries

    # -- the steps -----------------------------------------------------------------
    def _go(self) -> str:
        go = shutil.which("go") or "/usr/local/go/bin/go"
        if not Path(go).exists():
            raise HarnessError(f"{self.name}: the Go toolchain is needed to build {self.name}")
        return go

    def _env(self, **extra: str) -> dict[str, str]:
        env = {"GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0", **extra}
        if GO_TOOLCHAIN:
            env["GOTOOLCHAIN"] = GO_TOOLCHAIN
        return env

    def _module_gomod(self, module_at_version: str) -> str:
        """Download one module (zip and go.mod) and return its go.mod text."""
        out = run_step(
            self.name,
            f"go mod download {module_at_version}",
            [self._go(), "mod", "download", "-json", module_at_version],
            cwd=self.cache_dir,
            env=self._env(),
        )
        info = json.loads(out[out.index("{") :])
        return Path(info["GoMod"]).read_text()

    def _build_kubernetes(self) -> None:
        go = self._go()
        upstream = self._module_gomod(f"k8s.io/kubernetes@{KUBERNETES_VERSION}")
        modules = staging_modules(upstream)
        if not modules:
            raise HarnessError(f"{self.name}: no staging modules in k8s.io/kubernetes go.mod")
        src = self.src_dir / f"kubernetes-{KUBERNETES_VERSION}"
        src.mkdir(parents=True, exist_ok=True)
        packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBERNETES_COMMANDS]
        (src / "go.mod").write_text(
            render_kubernetes_wrapper_gomod(KUBERNETES_VERSION, modules, go_version_of(upstream))
        )
        (src / "tools.go").write_text(render_tools_go(packages))
        env = self._env()
        run_step(
            self.name, "go mod tidy (kubernetes wrapper)", [go, "mod", "tidy"], cwd=src, env=env
        )
        build_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        run_step(
            self.name,
            f"go build {', '.join(KUBERNETES_COMMANDS)} {KUBERNETES_VERSION} "
            "(first time: 30-60 min on 2 cores)",
            [
                go,
                "build",
                "-v",  # one line per package compiled: the heartbeat shows where it is
                "-trimpath",
                f"-ldflags={kubernetes_ldflags(KUBERNETES_VERSION, build_date)}",
                "-o",
                f"{self.bin_dir}/",
                *packages,
            ],
            cwd=src,
            env=env,
            show_every_s=30.0,
        )

    def _build_etcd(self) -> None:
        go = self._go()
        upstream = self._module_gomod(f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}")
        src = self.src_dir / f"etcd-{ETCD_VERSION}"
        src.mkdir(parents=True, exist_ok=True)
        (src / "go.mod").write_text(render_etcd_gomod(ETCD_VERSION, go_version_of(upstream)))
        (src / "tools.go").write_text(render_tools_go(["go.etcd.io/etcd/server/v3"]))
        env = self._env()
        run_step(self.name, "go mod tidy (etcd)", [go, "mod", "tidy"], cwd=src, env=env)
        run_step(
            self.name,
            f"go build etcd {ETCD_VERSION}",
            [
                go,
                "build",
                "-trimpath",
                f"-ldflags={_STRIP_LDFLAGS}",
                "-o",
                str(self.binaries.etcd),
                "go.etcd.io/etcd/server/v3",
            ],
            cwd=src,
            env=env,
            show_every_s=30.0,
        )

    def _go_install(self, package: str, version: str, ldflags: str = _STRIP_LDFLAGS) -> None:
        run_step(
            self.name,
            f"go install {package}@{version}",
            [self._go(), "install", "-trimpath", f"-ldflags={ldflags}", f"{package}@{version}"],
            cwd=self.cache_dir,
            env=self._env(GOBIN=str(self.bin_dir)),
            show_every_s=30.0,
        )

    def _build_kwok(self) -> None:
        self._go_install("sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION)

    def _build_helm(self) -> None:
        self._go_install(
            "helm.sh/helm/v3/cmd/helm",
            HELM_VERSION,
            f"{_STRIP_LDFLAGS} -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
        )


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def build_all(root: Path) -> Binaries:
    """Build every missing binary under `root/cache/k8s/bin` and return their paths."""
    return K8sBuilder(root).ensure()


if __name__ == "__main__":  # pragma: no cover - manual use: python -m reelplane.infra.k8s_build
    from reelplane.infra.harness import default_root

    started = time.monotonic()
    build_all(default_root())
    progress("k8s", f"all binaries ready in {time.monotonic() - started:.0f} s")
    os._exit(0)
