"""`reelplane operator ...`: run the Kopf operator."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, cast

import click


@click.group("operator")
def operator_group() -> None:
    """The Kubernetes operator (TranscodePool, FeedShard, EdgePoP, Recommender)."""


@operator_group.command("run")
@click.option(
    "--namespace",
    "-n",
    default=None,
    envvar="REELPLANE_OPERATOR_NAMESPACE",
    help="Watch one namespace (default: all namespaces, needs cluster-wide RBAC).",
)
@click.option(
    "--peering",
    default=None,
    envvar="REELPLANE_OPERATOR_PEERING",
    help="Kopf peering object name: replicas with the same name coordinate (one active). "
    "Without it the operator runs standalone.",
)
@click.option(
    "--priority",
    type=int,
    default=None,
    envvar="REELPLANE_OPERATOR_PRIORITY",
    help="Peering priority (highest live one is active). Default: random, so replicas of "
    "one Deployment differ.",
)
@click.option(
    "--peering-lifetime",
    type=click.IntRange(5, 3600),
    default=60,
    show_default=True,
    envvar="REELPLANE_OPERATOR_PEERING_LIFETIME",
    help="Seconds a replica's peering heartbeat stays valid: how soon a standby takes "
    "over from an active replica that died.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file (default: in-cluster service account, then $KUBECONFIG).",
)
@click.option(
    "--liveness",
    default=None,
    envvar="REELPLANE_OPERATOR_LIVENESS",
    help="Serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz.",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def run(
    namespace: str | None,
    peering: str | None,
    priority: int | None,
    peering_lifetime: int,
    kubeconfig: Path | None,
    liveness: str | None,
    verbose: bool,
) -> None:
    """Run the operator until interrupted."""
    if kubeconfig is not None:
        # The login handler reads $KUBECONFIG when not in a Pod.
        os.environ["KUBECONFIG"] = str(kubeconfig.resolve())

    import kopf

    from reelplane_operator import handlers  # noqa: F401  (registers the handlers)
    from reelplane_operator.runtime import CONFIG_KEY, OperatorConfig

    config = OperatorConfig(
        namespace=namespace, peering=peering, peering_lifetime_s=peering_lifetime
    )
    if priority is not None:
        config.priority = priority
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    if not verbose:
        # One line per API request or handler run drowns the warnings at scale.
        for name in ("httpx", "httpx2", "kopf.objects"):
            logging.getLogger(name).setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else [],
            standalone=peering is None,
            peering_name=peering,
            priority=config.priority,
            # Kopf types it as its (unexported) NewType of str.
            identity=cast(Any, config.identity),
            liveness_endpoint=liveness,
            memo=kopf.Memo({CONFIG_KEY: config}),
        )
    )
