"""The reelplane chart's digest CronJob (`reelplane notify digest`), rendered with
`helm template` as a user installs it: schedule and period from values, never two
runs at once, the same image and settings as the service Pods, and accepted by
the API server (a server-side dry run on the local control plane)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from e2e.operator_support import CHARTS, CommandFailed, Kubectl, chart_secret_values
from e2e.wiring import dangling_references

pytestmark = pytest.mark.e2e

NAMESPACE = "default"
SECRET_VALUES = tuple(chart_secret_values())


def render(k: Kubectl, *args: str) -> list[dict[str, Any]]:
    text = k.helm(
        "template",
        "reelplane",
        str(CHARTS / "reelplane"),
        f"--namespace={NAMESPACE}",
        *SECRET_VALUES,
        *args,
    )
    return [doc for doc in yaml.safe_load_all(text) if doc]


def cronjobs(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in rendered if m["kind"] == "CronJob"]


def container(cronjob: dict[str, Any]) -> dict[str, Any]:
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    assert pod["restartPolicy"] == "Never"
    return dict(only)


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"]}


def test_the_digest_cronjob_runs_the_job_weekly_and_never_twice_at_once(k8s: Kubectl) -> None:
    rendered = render(k8s)
    (digest,) = cronjobs(rendered)
    assert digest["metadata"]["name"] == "reelplane-notify-digest"
    spec = digest["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["schedule"], spec["timeZone"]) == ("0 7 * * 1", "Etc/UTC")
    c = container(digest)
    assert c["args"] == ["notify", "digest"]
    assert env(c)["REELPLANE_DIGEST_PERIOD"] == "weekly"
    assert "REELPLANE_MAIL_URL" not in env(c)  # the log, until a mail server is named
    # The service Pods' image and settings (ConfigMap + Secret).
    (gateway,) = [
        m
        for m in rendered
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "reelplane-gateway"
    ]
    served = gateway["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == served["image"]
    assert c["envFrom"] == served["envFrom"]
    assert dangling_references(rendered, NAMESPACE) == []


def test_schedule_period_and_mail_server_come_from_values(k8s: Kubectl) -> None:
    (digest,) = cronjobs(
        render(
            k8s,
            "--set=notifyDigest.schedule=30 6 * * *",
            "--set=notifyDigest.period=daily",
            "--set=notifyDigest.mailUrl=smtp://mail.example.org:587",
        )
    )
    assert digest["spec"]["schedule"] == "30 6 * * *"
    values = env(container(digest))
    assert values["REELPLANE_DIGEST_PERIOD"] == "daily"
    assert values["REELPLANE_MAIL_URL"] == "smtp://mail.example.org:587"
    assert not cronjobs(render(k8s, "--set=notifyDigest.enabled=false"))


def test_shards_make_an_indexed_job_one_pod_per_shard(k8s: Kubectl) -> None:
    (one,) = cronjobs(render(k8s))
    assert "completionMode" not in one["spec"]["jobTemplate"]["spec"]
    (digest,) = cronjobs(render(k8s, "--set=notifyDigest.shards=4"))
    job = digest["spec"]["jobTemplate"]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 4, 4)
    # The CLI reads its index from JOB_COMPLETION_INDEX, set by the Job controller.
    assert env(container(digest))["REELPLANE_DIGEST_SHARDS"] == "4"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("--set=notifyDigest.period=hourly", "period"),
        ("--set=notifyDigest.mailUrl=mailto:ops@example.org", "mailUrl"),
    ],
)
def test_a_bad_digest_value_fails_the_install_naming_it(
    k8s: Kubectl, value: str, named: str
) -> None:
    with pytest.raises(CommandFailed, match=named):
        render(k8s, value)


def test_the_api_server_accepts_the_cronjob(k8s: Kubectl) -> None:
    (digest,) = cronjobs(
        render(k8s, "--set=notifyDigest.period=daily", "--set=notifyDigest.shards=3")
    )
    done = k8s.run(
        "apply", "--dry-run=server", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(digest)
    )
    assert "reelplane-notify-digest" in done.stdout
