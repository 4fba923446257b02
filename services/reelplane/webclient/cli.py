"""`reelplane web ...` and what `reelplane dev` does for the web client:
build it before serving, and seed the demo content (`--demo`)."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from reelplane.clitools import one_line_errors
from reelplane.errors import ReelplaneError
from reelplane.settings import Settings, load_section
from reelplane.webclient.settings import WebSettings


def browse_url(settings: Settings) -> str:
    host = settings.http_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{settings.http_port}/"


def prepare_dev(settings: Settings, *, demo: bool) -> None:
    """Before `reelplane dev` serves: build the client (a failure is one
    warning line: `/` then explains), and with `demo` seed the demo content
    in a thread once the server answers."""
    from reelplane.webclient.build import build_client, default_static_dir

    web = load_section(WebSettings)
    if web.web_enabled:
        try:
            build_client(static_dir=web.web_static_dir or default_static_dir())
        except ReelplaneError as exc:
            click.echo(f"reelplane: web client not built ({exc}); / shows a plain page", err=True)
    url = browse_url(settings)
    click.echo(f"reelplane: open {url} in a browser", err=True)
    if demo:
        threading.Thread(target=_seed, args=(url,), name="demo-seed", daemon=True).start()


def _seed(url: str) -> None:
    from reelplane.webclient.demo import DEMO_PASSWORD, HANDLES, seed_demo

    def say(line: str) -> None:
        click.echo(f"reelplane: {line}", err=True)

    try:
        made = seed_demo(url.rstrip("/"), say=say)
    except Exception as exc:  # a demo that fails must not stop the server
        say(f"demo content failed: {exc}")
        return
    say(
        f"demo ready ({len(made)} new videos): open {url} and log in as "
        f"{' / '.join(HANDLES)} with password {DEMO_PASSWORD}"
    )


@click.group("web")
def web_group() -> None:
    """The browser client served by the gateway at /."""


@web_group.command("build")
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The client's sources (package-lock.json, index.html, src/). Default: web/ "
    "of this checkout; an installed package (an image build) names them.",
)
@click.option(
    "--npm-cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where `npm ci` installs the pinned packages. Default: .cache/web/npm",
)
@one_line_errors
def build(source: Path | None, npm_cache: Path | None) -> None:
    """Fetch the pinned npm packages and assemble the client (idempotent) into
    REELPLANE_WEB_STATIC_DIR (default .cache/web/static)."""
    from reelplane.webclient.build import build_client, default_static_dir

    web = load_section(WebSettings)
    made = build_client(
        web_dir=source, static_dir=web.web_static_dir or default_static_dir(), npm_dir=npm_cache
    )
    click.echo(f"reelplane: web client {made.build} in {made.static_dir}")


@web_group.command("demo")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="A running server.")
@one_line_errors
def demo(url: str) -> None:
    """Create the demo accounts and upload generated clips to a running server."""
    from reelplane.webclient.demo import seed_demo

    made = seed_demo(url.rstrip("/"), say=lambda line: click.echo(f"reelplane: {line}", err=True))
    click.echo(f"reelplane: demo ready ({len(made)} new videos) at {url}/")
