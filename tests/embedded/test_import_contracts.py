"""The layering contracts in pyproject.toml ([tool.importlinter]) hold on the
tree, and a change that breaks one fails `lint-imports` (as `reelplane test`
runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(cwd: Path, *args: str, pythonpath: Path | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if pythonpath is not None:  # ahead of the installed packages
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [LINT_IMPORTS, "--no-logo", "--no-cache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_tree_keeps_every_import_contract() -> None:
    code, output = lint_imports(ROOT)
    assert code == 0, output
    assert "0 broken" in output


def test_a_port_that_imports_an_adapter_breaks_the_ports_contract(tmp_path: Path) -> None:
    # The real package and the real contracts, with one forbidden import added.
    package = tmp_path / "reelplane"
    shutil.copytree(
        ROOT / "services" / "reelplane", package, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    port = package / "ports" / "bus.py"
    port.write_text(port.read_text() + "\nfrom reelplane.adapters import bus_memory  # noqa\n")

    code, output = lint_imports(tmp_path, "--contract", "ports", pythonpath=tmp_path)

    assert code == 1, output
    assert "Ports import no adapter" in output
    assert "BROKEN" in output
    assert "reelplane.ports.bus -> reelplane.adapters.bus_memory" in output
