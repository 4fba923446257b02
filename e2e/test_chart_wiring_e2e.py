"""Both charts and the CRD examples, rendered as a user installs them (`helm template`,
and the operator's pure renderers for the examples), are wired up: every Secret,
ConfigMap, Service and port that a Pod or a Varnish VCL names is in the rendered set
(e2e/wiring.py). KWOK's fake nodes run a Pod whose Secret is missing and never send
a request through a VCL backend, so this is where such a mismatch fails.

Also what the charts promise a real kubelet: the service Pods' probes, and the
Secret the chart creates, or refuses to go without.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.operator_support import CHARTS, CommandFailed, Kubectl, chart_secret_values
from e2e.wiring import Manifest, dangling_references
from reelplane_operator.meta import Owner
from reelplane_operator.models import (
    EdgePoPSpec,
    FeedShardSpec,
    RecommenderSpec,
    TranscodePoolSpec,
)
from reelplane_operator.render import edge, feed, recommender, transcode

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[1] / "crds" / "examples"
NAMESPACE = "demo"
#: The credentials, as the README walkthrough passes them to `helm install`.
SECRET_VALUES = tuple(chart_secret_values())


def helm_template(k: Kubectl, release: str, chart: str, *args: str) -> list[Manifest]:
    """`helm template` of a chart into NAMESPACE, as a list of manifests."""
    text = k.helm("template", release, str(CHARTS / chart), f"--namespace={NAMESPACE}", *args)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def examples() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES.glob("*.yaml"))]


def render_examples(bodies: list[dict[str, Any]]) -> list[Manifest]:
    """What the operator makes of the example resources in NAMESPACE (Recommenders
    without KubeRay; the routing table with every PoP Ready)."""
    out: list[Manifest] = []
    pops: list[Owner] = []
    routes: list[edge.RoutingEntry] = []
    for body in bodies:
        name, spec = body["metadata"]["name"], body.get("spec") or {}
        owner = Owner(kind=body["kind"], name=name, namespace=NAMESPACE, uid=f"uid-{name}")
        if owner.kind == "TranscodePool":
            pool = TranscodePoolSpec.model_validate(spec)
            out += transcode.render_transcode_pool(owner, pool, pool.min_replicas)
        elif owner.kind == "FeedShard":
            out += feed.render_feed_shard(owner, FeedShardSpec.model_validate(spec))
        elif owner.kind == "EdgePoP":
            pop = EdgePoPSpec.model_validate(spec)
            out += edge.render_edge_pop(owner, pop)
            pops.append(owner)
            routes.append(
                edge.RoutingEntry(
                    name,
                    pop.region,
                    pop.location.latitude,
                    pop.location.longitude,
                    pop.capacity_gbps,
                    edge.edge_endpoint(owner),
                )
            )
        elif owner.kind == "Recommender":
            rec = RecommenderSpec.model_validate(spec)
            out += recommender.render_recommender(owner, rec, kuberay=False)
        else:
            raise AssertionError(f"no renderer for the example kind {owner.kind}")
    if pops:
        out.append(edge.render_routing_table(NAMESPACE, routes, pops))
    return out


def everything(k: Kubectl, *reelplane_args: str) -> list[Manifest]:
    """Both charts as the README installs them, plus the examples' children."""
    return [
        *helm_template(k, "reelplane-operator", "reelplane-operator"),
        *helm_template(k, "reelplane", "reelplane", *SECRET_VALUES, *reelplane_args),
        *render_examples(examples()),
    ]


def test_charts_and_examples_reference_only_what_they_render(k8s: Kubectl) -> None:
    rendered = everything(k8s)
    kinds = {m["kind"] for m in rendered}
    assert {"Deployment", "Service", "Secret", "ConfigMap", "Ingress"} <= kinds
    assert dangling_references(rendered, NAMESPACE) == []


def test_the_check_catches_what_a_real_cluster_would(k8s: Kubectl) -> None:
    """Each defect of issue 10 item 9, put back, fails the check."""
    # The Secret made elsewhere but not made: every service Pod (and the pool's) waits.
    problems = dangling_references(
        everything(k8s, "--set=secrets.existingSecret=made-elsewhere"), NAMESPACE
    )
    assert any("Secret demo/made-elsewhere is not rendered" in p for p in problems)
    assert sum("reelplane-gateway container gateway: envFrom" in p for p in problems) == 1

    # The old EdgePoP example: Varnish pointed at upload:8080.
    bodies = examples()
    pop = next(b for b in bodies if b["kind"] == "EdgePoP")
    pop["spec"]["origin"] = {"host": "upload", "port": 8080}
    charts = [
        *helm_template(k8s, "reelplane-operator", "reelplane-operator"),
        *helm_template(k8s, "reelplane", "reelplane", *SECRET_VALUES),
    ]
    assert dangling_references([*charts, *render_examples(bodies)], NAMESPACE) == [
        "ConfigMap demo/fra-1-edge-vcl default.vcl: VCL backend origin (upload:8080) -> "
        "Service demo/upload is not rendered"
    ]
    # Right name, wrong port.
    pop["spec"]["origin"] = {"host": "reelplane-upload", "port": 8080}
    problems = dangling_references([*charts, *render_examples(bodies)], NAMESPACE)
    assert problems == [
        "ConfigMap demo/fra-1-edge-vcl default.vcl: VCL backend origin (reelplane-upload:8080)"
        " -> Service demo/reelplane-upload has no port 8080 (it has [80])"
    ]

    # A release under another name: the examples' Secret and origin no longer match it.
    other = [
        *helm_template(k8s, "rp", "reelplane", *SECRET_VALUES, "--set=secrets.name=rp-secrets"),
        *render_examples(examples()),
    ]
    problems = dangling_references(other, NAMESPACE)
    assert any("Service demo/reelplane-upload is not rendered" in p for p in problems)
    assert any("Secret demo/reelplane-secrets is not rendered" in p for p in problems)


def _service_pods(rendered: list[Manifest]) -> dict[str, dict[str, Any]]:
    """The reelplane chart's service containers by service name."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/name"]: m["spec"]["template"]["spec"][
            "containers"
        ][0]
        for m in rendered
        if m["kind"] == "Deployment"
    }


def test_the_chart_creates_the_secret_every_service_pod_needs(k8s: Kubectl) -> None:
    rendered = helm_template(k8s, "reelplane", "reelplane", *SECRET_VALUES)
    (secret,) = [m for m in rendered if m["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "reelplane-secrets"
    assert secret["stringData"] == {
        "REELPLANE_DATABASE_URL": "mysql+asyncmy://reelplane:pw@mariadb:3306/reelplane",
        "REELPLANE_OBJECTS_URL": "s3://media?endpoint=http://s3:7070&region=us-east-1",
    }
    for name, container in _service_pods(rendered).items():
        refs = [s["secretRef"] for s in container["envFrom"] if "secretRef" in s]
        assert refs == [{"name": "reelplane-secrets", "optional": False}], name

    # A Secret made elsewhere: the chart creates none and the Pods read that one.
    mine = helm_template(k8s, "reelplane", "reelplane", "--set=secrets.existingSecret=mine")
    assert not [m for m in mine if m["kind"] == "Secret"]
    for container in _service_pods(mine).values():
        assert {"secretRef": {"name": "mine", "optional": False}} in container["envFrom"]


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ((), "secrets.databaseUrl is required"),
        ((SECRET_VALUES[0],), "secrets.objectsUrl is required"),
    ],
)
def test_install_without_credentials_fails_naming_the_value(
    k8s: Kubectl, values: tuple[str, ...], missing: str
) -> None:
    with pytest.raises(CommandFailed, match=missing) as failed:
        helm_template(k8s, "reelplane", "reelplane", *values)
    assert "secrets.existingSecret" in str(failed.value)


def test_liveness_asks_healthz_and_readiness_readyz(k8s: Kubectl) -> None:
    """A backend outage takes Pods out of their Services (readiness) and restarts none
    (liveness asks only whether the process answers)."""
    rendered = everything(k8s)
    services = _service_pods(helm_template(k8s, "reelplane", "reelplane", *SECRET_VALUES))
    assert services
    shards = [
        m["spec"]["template"]["spec"]["containers"][0]
        for m in rendered
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("-feed")
    ]
    assert shards
    for container in [*services.values(), *shards]:
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        # Slower to kill than to take out of rotation.
        live, ready = container["livenessProbe"], container["readinessProbe"]
        assert (
            live["periodSeconds"] * live["failureThreshold"]
            > ready["periodSeconds"] * ready["failureThreshold"]
        )


def test_settings_and_secret_changes_roll_the_pods(k8s: Kubectl) -> None:
    def checksums(*args: str) -> dict[str, str]:
        (gateway,) = [
            m
            for m in helm_template(k8s, "reelplane", "reelplane", *args)
            if m["kind"] == "Deployment" and m["metadata"]["name"] == "reelplane-gateway"
        ]
        return dict(gateway["spec"]["template"]["metadata"]["annotations"])

    base = checksums(*SECRET_VALUES)
    rotated = checksums(SECRET_VALUES[0], "--set=secrets.objectsUrl=s3://media?access_key=new")
    assert base["checksum/secrets"] != rotated["checksum/secrets"]
    assert base["checksum/settings"] == rotated["checksum/settings"]
    assert base == checksums(*SECRET_VALUES)  # stable: an unchanged upgrade rolls nothing


def test_notify_is_routed_and_its_websocket_has_an_ingress_that_outlasts_a_quiet_socket(
    k8s: Kubectl,
) -> None:
    rendered = helm_template(
        k8s, "reelplane", "reelplane", *SECRET_VALUES, "--set=ingress.annotations.team=media"
    )
    services = _service_pods(rendered)
    assert "notify" in services
    urls = {e["name"]: e["value"] for e in services["gateway"]["env"] if "value" in e}
    assert json.loads(urls["REELPLANE_SERVICE_URLS"])["notify"] == "http://reelplane-notify"
    ingresses = {m["metadata"]["name"]: m for m in rendered if m["kind"] == "Ingress"}
    live = ingresses["reelplane-live"]
    assert live["metadata"]["annotations"] == {
        "team": "media",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
    }
    ((path,),) = [r["http"]["paths"] for r in live["spec"]["rules"]]
    assert path["path"] == "/v1/notifications/live" and path["pathType"] == "Exact"
    assert path["backend"]["service"]["name"] == "reelplane-gateway"
    # The rest of the API keeps the default timeouts.
    assert "annotations" not in ingresses["reelplane"]["metadata"] or (
        "nginx.ingress.kubernetes.io/proxy-read-timeout"
        not in ingresses["reelplane"]["metadata"]["annotations"]
    )

    # Without notify there is nothing to route and no live Ingress.
    off = helm_template(
        k8s, "reelplane", "reelplane", *SECRET_VALUES, "--set=services.notify.enabled=false"
    )
    assert [m["metadata"]["name"] for m in off if m["kind"] == "Ingress"] == ["reelplane"]
    # A timeout under a minute is refused by the schema, naming the value.
    with pytest.raises(CommandFailed, match="timeoutSeconds"):
        helm_template(
            k8s, "reelplane", "reelplane", *SECRET_VALUES, "--set=ingress.live.timeoutSeconds=5"
        )
