"""The `reelplane` command.

Every error Reelplane raises on purpose ends as one line on stderr naming what
to fix (a setting, a server) and a non-zero exit; no traceback wall.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic_settings import BaseSettings

from reelplane.clitools import is_harness_missing, needs_checkout, one_line_errors
from reelplane.errors import ConfigError, ReelplaneError
from reelplane.settings import Settings, load_section, load_settings, setting_name
from reelplane.urls import redact

if TYPE_CHECKING:
    from reelplane.infra.harness import Harness

T = TypeVar("T")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelplane")
def main() -> None:
    """Reelplane: an open, self-hostable short-video platform for Kubernetes."""


# -- running the platform --------------------------------------------------------
def run_on_fast_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop (libuv: cheaper socket I/O than asyncio's own loop),
    the loop the services serve on; asyncio's when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it on Linux and macOS
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def check_port_free(host: str, port: int) -> None:
    """Raise a ConfigError naming the setting when `host:port` cannot be bound
    (in use, not an address of this machine, privileged): checked before
    anything starts, so a second `reelplane dev` is one line, not a banner then
    a traceback. Binds as the server will (SO_REUSEADDR, every address of
    `host`) and lets go at once."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"{setting_name('http_host')}={host}", exc.strerror or str(exc)) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio's create_server binds it
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise ConfigError(
                        f"{setting_name('http_host')}={host}",
                        "not an address of this machine",
                    ) from None
                reason = (
                    "already in use (another reelplane dev?)"
                    if exc.errno == errno.EADDRINUSE
                    else exc.strerror or str(exc)
                )
                raise ConfigError(
                    f"{setting_name('http_port')}={port}",
                    f"cannot listen on {host}:{port}: {reason}; "
                    "choose another port (--port or REELPLANE_HTTP_PORT)",
                ) from None


def _serve(settings: Settings, services: list[str], workers: list[str] | None = None) -> None:
    import uvicorn

    from reelplane.backends import open_backends
    from reelplane.http.app import create_app, freeze_startup_heap
    from reelplane.http.services import served_services
    from reelplane.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    check_port_free(settings.http_host, settings.http_port)

    async def run() -> None:
        backends = await open_backends(settings)
        try:
            app = create_app(settings, services, workers=workers, backends=backends)
            freeze_startup_heap()
            config = uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
            click.echo(
                f"reelplane: serving {', '.join(served_services(services)) or 'health only'} on "
                f"http://{settings.http_host}:{settings.http_port} "
                f"(start here: /, API docs: /docs, health: /healthz, /readyz)",
                err=True,
            )
            await uvicorn.Server(config).serve()
        finally:
            await backends.close()

    run_on_fast_loop(run())


@main.command()
@click.option("--host", default=None, help="Bind address (REELPLANE_HTTP_HOST).")
@click.option("--port", type=int, default=None, help="Port (REELPLANE_HTTP_PORT).")
@click.option(
    "--demo", is_flag=True, help="Create demo accounts and upload generated clips (idempotent)."
)
@one_line_errors
def dev(host: str | None, port: int | None, demo: bool) -> None:
    """Run every service in one process on the embedded backends (or whatever
    the REELPLANE_* settings choose), with the web client at /."""
    from reelplane.http.services import SERVICES, WORKERS

    overrides: dict[str, Any] = {}
    if host:
        overrides["http_host"] = host
    if port:
        overrides["http_port"] = port
    settings = load_settings(**overrides)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # For You from the real recommender, in this process, unless told otherwise.
    os.environ.setdefault("REELPLANE_RECOMMENDER_URL", "embedded:")
    from reelplane.webclient.cli import prepare_dev

    # A busy port or a foreign address is the one line the user sees, before the
    # client is built and "open ... in a browser" is printed.
    check_port_free(settings.http_host, settings.http_port)
    prepare_dev(settings, demo=demo)
    _serve(settings, list(SERVICES), list(WORKERS))


@main.command()
@click.argument("service")
@one_line_errors
def serve(service: str) -> None:
    """Run one service (as its Deployment does in a cluster)."""
    from reelplane.http.services import SERVICES

    if service not in SERVICES:
        raise ConfigError("SERVICE", f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    _serve(load_settings(), [service])


@main.command()
@one_line_errors
def migrate() -> None:
    """Bring the relational schema up to date (also done at every start)."""
    from reelplane.backends import open_backends

    async def run() -> None:
        backends = await open_backends(load_settings(), migrate=True)
        await backends.close()

    asyncio.run(run())
    click.echo("reelplane: schema is up to date")


#: Every settings section beside the core one: (title, "module:class").
SETTINGS_SECTIONS = (
    ("gateway (edge, rate limits, routing)", "reelplane.gateway.settings:GatewaySettings"),
    ("upload", "reelplane.upload.settings:UploadSettings"),
    ("engagement", "reelplane.engagement.settings:EngagementSettings"),
    ("graph", "reelplane.graph.settings:GraphSettings"),
    ("feed", "reelplane.feed.settings:FeedSettings"),
    ("notify", "reelplane.notify.settings:NotifySettings"),
    ("web client", "reelplane.webclient.settings:WebSettings"),
    ("transcode worker", "reelplane_transcode.settings:TranscodeSettings"),
)


def _shown(value: object) -> str:
    if isinstance(value, str) and "://" in value:
        return redact(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@main.command("settings")
@one_line_errors
def show_settings() -> None:
    """Print the effective settings of every section (secrets redacted)."""
    sections: list[tuple[str, BaseSettings]] = [("core", load_settings())]
    for title, target in SETTINGS_SECTIONS:
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        sections.append((title, load_section(cls)))
    for title, values in sections:
        click.echo(f"# {title}")
        for name, field in type(values).model_fields.items():
            value = _shown(getattr(values, name))
            click.echo(f"{setting_name(name)}={value}    # {field.description or ''}")


# -- real servers -------------------------------------------------------------------
@main.group()
def infra() -> None:
    """The real servers (Kafka, Redis, Cassandra, MariaDB, S3, OpenSearch) on 127.0.0.1."""


def _make_harness(command: str) -> Harness:
    """The harness over every real server; a one-line error where it is not installed."""
    try:
        from reelplane.infra.registry import make_harness
    except ModuleNotFoundError as exc:
        if is_harness_missing(exc):
            raise needs_checkout(command) from None
        raise
    return make_harness()


def _print_status(rows: list[Any]) -> None:
    click.echo(f"{'SERVER':<10} {'STATE':<9} {'PID':>7}  {'ADDRESS':<16} URL")
    for r in rows:
        click.echo(f"{r.name:<10} {r.state:<9} {r.pid or '-':>7}  {r.address:<16} {redact(r.url)}")


@infra.command("up")
@click.argument("names", nargs=-1)
@one_line_errors
def infra_up(names: tuple[str, ...]) -> None:
    """Install what is missing and start the servers (all, or NAMES); idempotent."""
    _print_status(_make_harness("infra up").up(list(names) or None))


@infra.command("down")
@click.argument("names", nargs=-1)
@one_line_errors
def infra_down(names: tuple[str, ...]) -> None:
    """Stop the servers this harness started (never others)."""
    stopped = _make_harness("infra down").down(list(names) or None)
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing'}")


@infra.command("status")
@one_line_errors
def infra_status() -> None:
    """Show each server, its state and address."""
    _print_status(_make_harness("infra status").status())


@infra.command("env")
@one_line_errors
def infra_env() -> None:
    """Print the REELPLANE_* settings that point at the real servers
    (use: eval "$(reelplane infra env)")."""
    for server in _make_harness("infra env").servers.values():
        click.echo(f"export {server.setting}='{server.url}'")


# -- development -----------------------------------------------------------------
def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "tests").is_dir():
            return parent
    raise ConfigError("REPO", "reelplane test runs from a source checkout")


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--no-lint", is_flag=True, help="Skip ruff, mypy and the import contracts.")
@click.option("--no-infra", is_flag=True, help="Do not start the real servers first.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@one_line_errors
def test(no_lint: bool, no_infra: bool, pytest_args: tuple[str, ...]) -> None:
    """Lint, type-check, check the layering contracts ([tool.importlinter] in
    pyproject.toml) and run the whole test suite against the real servers
    (started through the harness). Extra arguments go to pytest."""
    root = _repo_root()
    bin_dir = Path(sys.executable).parent
    steps: list[tuple[str, list[str]]] = []
    if not no_lint:
        steps += [
            ("ruff check", [str(bin_dir / "ruff"), "check", "."]),
            ("ruff format --check", [str(bin_dir / "ruff"), "format", "--check", "."]),
            ("mypy", [str(bin_dir / "mypy")]),
            (
                "lint-imports",
                [str(bin_dir / "lint-imports"), "--no-logo", "--cache-dir", ".cache/import-linter"],
            ),
        ]
    for title, cmd in steps:
        click.echo(f"==> {title}", err=True)
        if subprocess.run(cmd, cwd=root, check=False).returncode != 0:
            raise ReelplaneError(f"{title} failed")
    env = dict(os.environ)
    if not no_infra:
        click.echo("==> infra up", err=True)
        _make_harness("test").up()
        # The local Kubernetes control plane for the cluster and operator tests
        # (its first build is long; pytest's per-test timeout must not include it).
        click.echo("==> cluster up", err=True)
        from reelplane.infra.cluster import LocalCluster

        LocalCluster().up()
    click.echo("==> pytest", err=True)
    pytest = shutil.which("pytest", path=str(bin_dir)) or "pytest"
    code = subprocess.run([pytest, *pytest_args], cwd=root, env=env, check=False).returncode
    if code == 5:
        raise ReelplaneError("pytest collected no tests")
    if code != 0:
        sys.exit(code)


@click.command(
    "cluster",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@one_line_errors
def _cluster_needs_checkout(args: tuple[str, ...]) -> None:
    """A local Kubernetes control plane (needs a source checkout)."""
    raise needs_checkout("cluster")


def _register_subcommands() -> None:
    """Command groups that live with their component (cluster, operator, worker, counters,
    search, notify)."""
    from reelplane.engagement.cli import counters
    from reelplane_operator.cli import operator_group
    from reelplane_transcode.cli import worker

    try:
        from reelplane.infra.cluster_cli import cluster_group
    except ModuleNotFoundError as exc:
        if not is_harness_missing(exc):
            raise
        main.add_command(_cluster_needs_checkout, "cluster")
    else:
        main.add_command(cluster_group, "cluster")
    main.add_command(operator_group)
    main.add_command(worker)
    main.add_command(counters)
    from reelplane.search.cli import search_group

    main.add_command(search_group)
    from reelplane.notify.cli import notify_group

    main.add_command(notify_group)
    from reelplane.webclient.cli import web_group

    main.add_command(web_group)
    try:  # the recommender's commands; its package may be left out of an image
        from reelplane_ml.train.cli import ml_group
    except ImportError:
        pass
    else:
        main.add_command(ml_group)


_register_subcommands()
