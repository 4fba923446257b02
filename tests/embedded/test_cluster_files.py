"""The local control plane's files and CLI, without starting it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from reelplane.infra import cluster_pki as pki
from reelplane.infra.cluster import COMPONENT_CLASSES, ClusterLayout

pytestmark = pytest.mark.embedded

REELPLANE = str(Path(sys.executable).parent / "reelplane")


def test_pki_is_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    paths = ClusterLayout(tmp_path).pki
    pki.ensure_pki(paths, "https://127.0.0.1:16443")
    ca_before = paths.ca_cert.read_bytes()
    admin_before = paths.kubeconfig(pki.ADMIN).read_text()

    pki.ensure_pki(paths, "https://127.0.0.1:16443")

    assert paths.ca_cert.read_bytes() == ca_before
    assert paths.kubeconfig(pki.ADMIN).read_text() == admin_before
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(ca_before)
    for identity in pki.CLIENT_IDENTITIES:
        cert = x509.load_pem_x509_certificate(paths.client_cert(identity).read_bytes())
        cert.verify_directly_issued_by(ca)
        config = json.loads(paths.kubeconfig(identity).read_text())
        assert config["users"][0]["name"] == identity.common_name
    # The front proxy has a CA of its own: its client certificate is no cluster user.
    proxy_ca = x509.load_pem_x509_certificate(paths.front_proxy_ca_cert.read_bytes())
    proxy = x509.load_pem_x509_certificate(paths.front_proxy_client_cert.read_bytes())
    proxy.verify_directly_issued_by(proxy_ca)
    assert proxy_ca.subject != ca.subject


def test_lost_ca_reissues_every_certificate(tmp_path: Path) -> None:
    paths = ClusterLayout(tmp_path).pki
    pki.ensure_pki(paths, "https://127.0.0.1:16443")
    old_admin = paths.client_cert(pki.ADMIN).read_bytes()
    paths.ca_cert.unlink()

    pki.ensure_pki(paths, "https://127.0.0.1:16443")

    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(paths.client_cert(pki.ADMIN).read_bytes())
    assert paths.client_cert(pki.ADMIN).read_bytes() != old_admin
    admin.verify_directly_issued_by(ca)


def _cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    env["REELPLANE_CACHE_DIR"] = str(cache)
    return subprocess.run(
        [REELPLANE, "cluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cluster_kubeconfig_prints_the_admin_kubeconfig_path(tmp_path: Path) -> None:
    result = _cli("kubeconfig", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "cluster" / "kubeconfig" / "admin.kubeconfig")


def test_cluster_status_lists_every_component(tmp_path: Path) -> None:
    result = _cli("status", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["COMPONENT", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == [c.name for c in COMPONENT_CLASSES]
