"""Shared CLI plumbing: every command ends a deliberate error as one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import click

from reelplane.errors import ConfigError, ReelplaneError

P = ParamSpec("P")
R = TypeVar("R")


#: The local harness (real servers, local cluster): in a source checkout only; the
#: runtime images leave it out (docker/*.dockerignore).
HARNESS_PACKAGE = "reelplane.infra"


def is_harness_missing(exc: ModuleNotFoundError) -> bool:
    """Whether an import failed because the harness is not installed (a runtime image)."""
    return exc.name is not None and (exc.name + ".").startswith(HARNESS_PACKAGE + ".")


def needs_checkout(command: str) -> ReelplaneError:
    """The one-line error of a harness command run where there is no harness."""
    return ReelplaneError(
        f"`reelplane {command}` needs a source checkout: this installation has no "
        f"local harness ({HARNESS_PACKAGE}; the runtime images leave it out)"
    )


def _reported() -> tuple[type[Exception], ...]:
    """The errors printed as one line: ReelplaneError, and the harness's own."""
    try:
        from reelplane.infra.harness import HarnessError
    except ModuleNotFoundError as exc:
        if not is_harness_missing(exc):
            raise
        return (ReelplaneError,)
    return (ReelplaneError, HarnessError)


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print `reelplane: error: ...` (exit 2 for settings, 1 otherwise), never a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        reported = _reported()
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"reelplane: error: {exc.detail}", err=True)
            sys.exit(2)
        except reported as exc:
            click.echo(f"reelplane: error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper
