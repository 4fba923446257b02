"""`reelplane cluster up|down|status|kubeconfig`: the local Kubernetes control plane."""

from __future__ import annotations

import time

import click

from reelplane.clitools import one_line_errors


@click.group("cluster")
def cluster_group() -> None:
    """A local Kubernetes control plane (etcd, kube-apiserver, controller-manager,
    scheduler, KWOK fake nodes) on 127.0.0.1, plus kubectl and helm."""


def _print_status() -> None:
    from reelplane.infra.cluster import LocalCluster

    rows = LocalCluster().status()
    click.echo(f"{'COMPONENT':<24} {'STATE':<9} {'PID':>7} {'RSS MiB':>8}  URL")
    for row in rows:
        s = row.server
        rss = f"{row.rss_mib:.0f}" if row.rss_mib is not None else "-"
        click.echo(f"{s.name:<24} {s.state:<9} {s.pid or '-':>7} {rss:>8}  {s.url}")


@cluster_group.command("up")
@one_line_errors
def cluster_up() -> None:
    """Build what is missing (first time: long) and start every component; idempotent."""
    from reelplane.infra.cluster import LocalCluster

    cluster = LocalCluster()
    started = time.monotonic()
    cluster.up()
    _print_status()
    bin_dir = cluster.binaries.bin_dir
    click.echo(
        f"\ncluster ready in {time.monotonic() - started:.0f} s. "
        "Use it with kubectl (and helm) from this shell:\n\n"
        f"  export KUBECONFIG={cluster.kubeconfig}\n"
        f'  export PATH="{bin_dir}:$PATH"\n'
        "  kubectl get nodes\n\n"
        "Stop it with `reelplane cluster down` (state is kept; --purge deletes it)."
    )


@cluster_group.command("down")
@click.option("--purge", is_flag=True, help="Also delete etcd data, certificates and kubeconfigs.")
@one_line_errors
def cluster_down(purge: bool) -> None:
    """Stop the components this harness started (never others)."""
    from reelplane.infra.cluster import LocalCluster

    stopped = LocalCluster().down(purge=purge)
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing'}")
    if purge:
        click.echo("cluster state deleted")


@cluster_group.command("status")
@one_line_errors
def cluster_status() -> None:
    """Show each component: state, pid, resident memory, address."""
    _print_status()


@cluster_group.command("kubeconfig")
@one_line_errors
def cluster_kubeconfig() -> None:
    """Print the admin kubeconfig's path.

    Use: export KUBECONFIG=$(reelplane cluster kubeconfig)
    """
    from reelplane.infra.cluster import LocalCluster

    click.echo(str(LocalCluster().kubeconfig))
