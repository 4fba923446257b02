"""The local control plane's pure parts: build recipe, PKI, kubeconfigs, flags, nodes."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reelplane.infra import cluster_pki as pki
from reelplane.infra.cluster import (
    COMPONENT_CLASSES,
    DEFAULT_NODES,
    STAGES_FILE,
    ClusterLayout,
    FakeNode,
    LocalCluster,
    apiserver_args,
    controller_manager_args,
    etcd_args,
    kwok_args,
    node_is_ready,
    render_kwok_rbac,
    render_node,
    scheduler_args,
)
from reelplane.infra.k8s_build import (
    go_version_of,
    kubernetes_ldflags,
    render_etcd_gomod,
    render_kubernetes_wrapper_gomod,
    render_tools_go,
    staging_modules,
    staging_version,
)

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

UPSTREAM_GOMOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tk8s.io/kube-openapi v0.0.0-20260721132016-d427ff9ee9ad
)

require (
\tk8s.io/streaming v0.0.0 // indirect
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
\tk8s.io/streaming => ./staging/src/k8s.io/streaming
)
"""


# -- build recipe ------------------------------------------------------------------------
def test_staging_modules_are_the_required_ones_replaced_by_local_folders() -> None:
    assert staging_modules(UPSTREAM_GOMOD) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/streaming"]


def test_staging_version_maps_release_to_published_tag() -> None:
    assert staging_version("v1.37.2") == "v0.37.2"
    with pytest.raises(ValueError, match="release tag"):
        staging_version("v0.37.2")


def test_wrapper_gomod_replaces_each_staging_module_with_its_published_tag() -> None:
    text = render_kubernetes_wrapper_gomod("v1.37.2", ["k8s.io/api", "k8s.io/client-go"], "1.26.0")
    assert "require k8s.io/kubernetes v1.37.2" in text
    assert "\tk8s.io/api => k8s.io/api v0.37.2\n" in text
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.2\n" in text
    assert "\ngo 1.26.0\n" in text
    assert go_version_of(UPSTREAM_GOMOD) == "1.26.0"


def test_tools_file_is_build_tagged_so_it_is_never_compiled() -> None:
    text = render_tools_go(["k8s.io/kubernetes/cmd/kubectl"])
    assert text.startswith("//go:build tools\n")
    assert '_ "k8s.io/kubernetes/cmd/kubectl"' in text


def test_etcd_gomod_requires_the_server_module() -> None:
    assert "require go.etcd.io/etcd/server/v3 v3.6.16" in render_etcd_gomod("v3.6.16", "1.26.0")


def test_ldflags_stamp_the_release_version_and_strip_symbols() -> None:
    flags = kubernetes_ldflags("v1.37.2", "2026-01-01T00:00:00Z")
    assert flags.startswith("-s -w ")
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=37" in flags


# -- PKI --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> tuple[pki.PrivateKey, x509.Certificate]:
    key = pki.new_key()
    return key, pki.make_ca(key, NOW)


def test_apiserver_certificate_names_loopback_and_in_cluster_service(
    ca: tuple[pki.PrivateKey, x509.Certificate],
) -> None:
    ca_key, ca_cert = ca
    key = pki.new_key()
    cert = pki.make_leaf(
        ca_cert=ca_cert,
        ca_key=ca_key,
        public_key=key.public_key(),
        common_name="kube-apiserver",
        now=NOW,
        names=pki.ServingNames(),
    )
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) >= {
        "localhost",
        "kubernetes.default",
        "kubernetes.default.svc.cluster.local",
    }
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.1"),
    }
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(ca_cert)
    assert cert.not_valid_after_utc == NOW + pki.CERT_VALIDITY


def test_client_certificate_carries_user_as_cn_and_groups_as_o(
    ca: tuple[pki.PrivateKey, x509.Certificate],
) -> None:
    ca_key, ca_cert = ca
    cert = pki.make_leaf(
        ca_cert=ca_cert,
        ca_key=ca_key,
        public_key=pki.new_key().public_key(),
        common_name=pki.ADMIN.common_name,
        organizations=pki.ADMIN.organizations,
        now=NOW,
    )
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "reelplane-admin"
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_component_identities_match_the_built_in_rbac_users() -> None:
    assert pki.CONTROLLER_MANAGER.common_name == "system:kube-controller-manager"
    assert pki.SCHEDULER.common_name == "system:kube-scheduler"
    assert pki.CONTROLLER_MANAGER.organizations == ()
    assert pki.kubernetes_service_ip("10.96.0.0/12") == "10.96.0.1"


def test_kubeconfig_embeds_credentials_and_selects_its_context() -> None:
    text = pki.render_kubeconfig(
        server="https://127.0.0.1:16443",
        ca_pem=b"CA",
        client_cert_pem=b"CERT",
        client_key_pem=b"KEY",
        user="alice",
    )
    config = json.loads(text)
    assert config["current-context"] == pki.CLUSTER_NAME
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:16443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
    user = config["users"][0]
    assert user["name"] == "alice"
    assert base64.b64decode(user["user"]["client-key-data"]) == b"KEY"
    assert config["contexts"][0]["context"] == {"cluster": pki.CLUSTER_NAME, "user": "alice"}


# -- flags, nodes, stages ------------------------------------------------------------------------
LAYOUT = ClusterLayout(Path("/c"))


def test_apiserver_turns_rbac_and_service_account_tokens_on() -> None:
    args = apiserver_args(LAYOUT, Path("/c/certs"))
    assert "--authorization-mode=Node,RBAC" in args
    assert "--service-cluster-ip-range=10.0.0.0/24" in args
    assert "--allow-privileged=true" in args
    assert "--etcd-servers=http://127.0.0.1:12379" in args
    assert f"--service-account-key-file={LAYOUT.pki.service_account_pub}" in args
    assert f"--client-ca-file={LAYOUT.pki.ca_cert}" in args
    # The aggregation layer, which the components' delegated authentication reads.
    assert f"--requestheader-client-ca-file={LAYOUT.pki.front_proxy_ca_cert}" in args
    assert f"--requestheader-allowed-names={pki.FRONT_PROXY_CLIENT}" in args
    assert f"--proxy-client-cert-file={LAYOUT.pki.front_proxy_client_cert}" in args


def test_components_use_their_own_identity_and_no_leader_election() -> None:
    kcm = controller_manager_args(LAYOUT, Path("/x"))
    assert f"--kubeconfig={LAYOUT.pki.kubeconfig(pki.CONTROLLER_MANAGER)}" in kcm
    assert "--use-service-account-credentials=true" in kcm
    assert "--leader-elect=false" in kcm
    assert f"--root-ca-file={LAYOUT.pki.ca_cert}" in kcm
    sched = scheduler_args(LAYOUT, Path("/x"))
    assert f"--kubeconfig={LAYOUT.pki.kubeconfig(pki.SCHEDULER)}" in sched
    assert "--leader-elect=false" in sched
    kwok = kwok_args(LAYOUT)
    assert "--manage-all-nodes=true" in kwok
    assert f"--config={STAGES_FILE}" in kwok


def test_burst_settings_never_let_client_limits_pace_the_controllers() -> None:
    api = apiserver_args(LAYOUT, Path("/x"))
    assert "--enable-priority-and-fairness=false" in api
    kcm = controller_manager_args(LAYOUT, Path("/x"))
    sched = scheduler_args(LAYOUT, Path("/x"))
    for args in (kcm, sched):
        qps = next(a for a in args if a.startswith("--kube-api-qps="))
        assert int(qps.split("=")[1]) >= 1000
    assert "--concurrent-deployment-syncs=16" in kcm
    assert "--unsafe-no-fsync=true" in etcd_args(Path("/d"))


def test_a_second_cluster_moves_every_port_and_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    layout = ClusterLayout(Path("/c"), "cluster-bench", 1000)
    assert layout.cluster_dir == Path("/c/cluster-bench")
    assert layout.apiserver_url == "https://127.0.0.1:17443"
    assert "--etcd-servers=http://127.0.0.1:13379" in apiserver_args(layout, Path("/x"))
    assert "--secure-port=17443" in apiserver_args(layout, Path("/x"))
    assert "--secure-port=17257" in controller_manager_args(layout, Path("/x"))
    assert "--secure-port=17259" in scheduler_args(layout, Path("/x"))
    assert "--server-address=127.0.0.1:17247" in kwok_args(layout)
    assert "--listen-peer-urls=http://127.0.0.1:13380" in etcd_args(Path("/d"), 1000)
    ports = {cls(layout).port for cls in COMPONENT_CLASSES}
    assert ports == {13379, 17443, 17257, 17259, 17247}
    monkeypatch.setenv("REELPLANE_CLUSTER_PORT_OFFSET", "2000")
    second = LocalCluster(Path("/c"))
    assert second.layout.cluster_dir == Path("/c/cluster-2000")
    assert second.layout.apiserver_url == "https://127.0.0.1:18443"
    monkeypatch.delenv("REELPLANE_CLUSTER_PORT_OFFSET")
    assert LocalCluster(Path("/c")).layout.cluster_dir == Path("/c/cluster")


def test_gpu_node_advertises_gpus_and_general_node_none() -> None:
    general, gpu = (render_node(n) for n in DEFAULT_NODES)
    assert "nvidia.com/gpu" not in general["status"]["capacity"]
    assert gpu["status"]["capacity"]["nvidia.com/gpu"] == "4"
    assert gpu["status"]["allocatable"] == gpu["status"]["capacity"]
    assert gpu["metadata"]["labels"]["kubernetes.io/hostname"] == gpu["metadata"]["name"]
    custom = render_node(FakeNode("n", labels=(("a", "b"),)))
    assert custom["metadata"]["labels"]["a"] == "b"


def test_kwok_rbac_binds_only_listed_verbs_to_kwok_user() -> None:
    role, binding = render_kwok_rbac()
    assert binding["subjects"][0]["name"] == pki.KWOK.common_name
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert "*" not in verbs
    assert "escalate" not in verbs


def test_node_ready_reads_the_ready_condition() -> None:
    assert node_is_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert not node_is_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not node_is_ready({"status": {}})


def test_stages_cover_node_and_pod_lifecycles() -> None:
    docs = list(yaml.safe_load_all(STAGES_FILE.read_text()))
    assert {d["kind"] for d in docs} == {"KwokConfiguration", "Stage"}
    stages = [d for d in docs if d["kind"] == "Stage"]
    kinds = {s["spec"]["resourceRef"]["kind"] for s in stages}
    assert kinds == {"Node", "Pod"}
    pod_stages = [s for s in stages if s["spec"]["resourceRef"]["kind"] == "Pod"]
    assert any("phase: Running" in s["spec"]["next"].get("statusTemplate", "") for s in pod_stages)
    assert any(s["spec"]["next"].get("delete") for s in pod_stages)
