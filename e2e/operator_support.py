"""What the operator's e2e tests and its scale benchmark share: kubectl and helm
against the local control plane, a least-privilege kubeconfig for the operator,
the operator as a child process, and the API server's write counters.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ROOT / "charts"
OPERATOR_SA = "reelplane-operator"
PEERING = "reelplane-operator"
#: Resources the operator writes (children and the four kinds' status).
OPERATOR_RESOURCES = frozenset(
    {
        "transcodepools",
        "feedshards",
        "edgepops",
        "recommenders",
        "deployments",
        "services",
        "configmaps",
        "rayservices",
    }
)
#: The verbs the operator writes with (server-side apply, Kopf's merge patches). Other
#: controllers' writes on a shared cluster (the namespace controller's DELETEs, the
#: root-CA publisher's POSTs, status PUTs) use other verbs; the metric has no client label.
WRITE_VERBS = frozenset({"APPLY", "PATCH"})

#: The credentials the tests install with (no server behind them: KWOK runs no container).
SECRETS = {
    "REELPLANE_DATABASE_URL": "mysql+asyncmy://reelplane:pw@mariadb:3306/reelplane",
    "REELPLANE_OBJECTS_URL": "s3://media?endpoint=http://s3:7070&region=us-east-1",
}

T = TypeVar("T")


class CommandFailed(AssertionError):
    """A kubectl/helm command failed; the message carries its stderr."""


@dataclass
class Kubectl:
    """kubectl (and helm) with one kubeconfig."""

    kubectl: Path
    kubeconfig: Path
    helm_bin: Path | None = None

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise CommandFailed(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done

    def json(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.run(*args, "-o", "json").stdout)
        return out

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        done = self.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr or "not found" in done.stderr:
                return None
            raise CommandFailed(done.stderr)
        out: dict[str, Any] = json.loads(done.stdout)
        return out

    def apply(self, objs: Iterable[dict[str, Any]], namespace: str) -> None:
        text = yaml.safe_dump_all(list(objs))
        self.run("apply", "--server-side", "-n", namespace, "-f", "-", stdin=text)

    def helm(self, *args: str, timeout: float = 300) -> str:
        if self.helm_bin is None:
            raise CommandFailed("helm is not available")
        cmd = [str(self.helm_bin), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise CommandFailed(f"helm {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout


def wait_for(
    probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.5
) -> T:
    """Poll `probe` until it returns something truthy; AssertionError naming `what`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def unique_namespace(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def condition(obj: dict[str, Any] | None, ctype: str) -> str | None:
    """status of a condition of an object (None if absent)."""
    if not obj:
        return None
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return str(cond.get("status"))
    return None


def install_charts(
    k: Kubectl, namespace: str, operator_replicas: int = 2, with_services: bool = True
) -> None:
    """Install reelplane-operator (CRDs, RBAC, its Deployment) and, unless told not to,
    reelplane into `namespace`."""
    k.run("create", "namespace", namespace)
    # Helm installs a chart's CRDs once and never upgrades them: a control plane
    # kept from an earlier run gets today's schemas (and CEL rules) this way,
    # as an upgrading cluster would.
    k.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    if not with_services:
        # What the reelplane chart would create, for the operator's Pods that name it.
        k.run(
            "create",
            "secret",
            "generic",
            "reelplane-secrets",
            "-n",
            namespace,
            *(f"--from-literal={key}={value}" for key, value in SECRETS.items()),
        )
    k.helm(
        "install",
        "reelplane-operator",
        str(CHARTS / "reelplane-operator"),
        "-n",
        namespace,
        f"--set=replicas={operator_replicas}",
        f"--set=serviceAccount.name={OPERATOR_SA}",
        f"--set=peering.name={PEERING}",
        "--wait",
        "--timeout=180s",
    )
    if not with_services:
        return
    k.helm(
        "install",
        "reelplane",
        str(CHARTS / "reelplane"),
        "-n",
        namespace,
        *chart_secret_values(),
        "--wait",
        "--timeout=180s",
    )


def chart_secret_values() -> list[str]:
    """`--set` arguments for the Secret the reelplane chart creates (both required)."""
    return [
        f"--set=secrets.databaseUrl={SECRETS['REELPLANE_DATABASE_URL']}",
        f"--set=secrets.objectsUrl={SECRETS['REELPLANE_OBJECTS_URL']}",
    ]


def uninstall(k: Kubectl, namespace: str) -> None:
    """Remove the releases and the namespace (best effort)."""
    for release in ("reelplane", "reelplane-operator"):
        with contextlib.suppress(CommandFailed):
            k.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=120s")
    k.run("delete", "namespace", namespace, "--wait=false", check=False)


def operator_kubeconfig(k: Kubectl, namespace: str, out: Path) -> Path:
    """A kubeconfig for the chart's ServiceAccount (a bound token), not the admin."""
    token = k.run("create", "token", OPERATOR_SA, "-n", namespace, "--duration=4h").stdout.strip()
    admin = yaml.safe_load(k.kubeconfig.read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str((k.kubeconfig.parent / ca).resolve())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": OPERATOR_SA, "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": "local", "user": OPERATOR_SA, "namespace": namespace},
            }
        ],
        "current-context": "operator",
    }
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


@dataclass
class OperatorProcess:
    """`reelplane operator run` as a child process with the given identity."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    peering: str | None = PEERING
    priority: int = 100
    peering_lifetime_s: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def start(self) -> None:
        cmd = [
            str(Path(sys.executable).parent / "reelplane"),
            "operator",
            "run",
            f"--namespace={self.namespace}",
            f"--kubeconfig={self.kubeconfig}",
        ]
        if self.peering:
            cmd += [f"--peering={self.peering}", f"--priority={self.priority}"]
            if self.peering_lifetime_s is not None:
                cmd.append(f"--peering-lifetime={self.peering_lifetime_s}")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@contextlib.contextmanager
def running_operator(k: Kubectl, namespace: str, tmp: Path) -> Iterator[OperatorProcess]:
    """The operator running out of cluster with the chart's ServiceAccount in
    `namespace` (its kubeconfig and log under `tmp`); its log's tail is printed
    when it stops, for a failing test's report."""
    proc = OperatorProcess(
        operator_kubeconfig(k, namespace, tmp / "kubeconfig"), namespace, tmp / "operator.log"
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print(proc.log()[-5000:])


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user+system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def process_peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def api_write_counts(k: Kubectl) -> dict[tuple[str, str], float]:
    """apiserver_request_total for writes, by (verb, resource[/subresource]), over the
    resources the operator writes."""
    text = k.run("get", "--raw", "/metrics", timeout=60).stdout
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition("} ")
        labels = dict(
            part.split("=", 1) for part in labels_text.split("{", 1)[1].split(",") if "=" in part
        )
        labels = {key: val.strip('"') for key, val in labels.items()}
        verb, resource = labels.get("verb", ""), labels.get("resource", "")
        if verb not in WRITE_VERBS or resource not in OPERATOR_RESOURCES:
            continue
        sub = labels.get("subresource", "")
        key = (verb, f"{resource}/{sub}" if sub else resource)
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def diff_counts(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    """Counters that moved between two snapshots."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if after[key] - before.get(key, 0.0) > 0
    }


#: KubeRay, whose RayService CRD the Recommender e2e installs (from the Go module proxy).
KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
KUBERAY_VERSION = "v1.5.0"


def kuberay_crd(name: str = "ray.io_rayservices.yaml") -> Path:
    """A KubeRay CRD manifest from the ray-operator Go module (`go mod download`:
    fetched once through the module proxy, then read from Go's module cache)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{KUBERAY_MODULE}@{KUBERAY_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise CommandFailed(f"go mod download {KUBERAY_MODULE}: {proc.stderr[-2000:]}")
    path = Path(json.loads(proc.stdout)["Dir"]) / "config" / "crd" / "bases" / name
    if not path.is_file():
        raise CommandFailed(f"{path} is not in {KUBERAY_MODULE}@{KUBERAY_VERSION}")
    return path
