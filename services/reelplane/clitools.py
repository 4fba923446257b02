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


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print `reelplane: error: ...` (exit 2 for settings, 1 otherwise), never a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from reelplane.infra.harness import HarnessError

        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"reelplane: error: {exc.detail}", err=True)
            sys.exit(2)
        except (ReelplaneError, HarnessError) as exc:
            click.echo(f"reelplane: error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper
