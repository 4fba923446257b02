"""The `reelplane` command as the runtime images install it: without the local harness
(`reelplane.infra`, which every docker/*.dockerignore leaves out)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]

# The CLI with every import of reelplane.infra failing as it does where it is absent.
WITHOUT_HARNESS = """
import sys
from importlib.abc import MetaPathFinder

class NoHarness(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "reelplane.infra" or name.startswith("reelplane.infra."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoHarness())
from reelplane.cli import main
sys.argv[0] = "reelplane"
main()
"""


def run_without_harness(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_HARNESS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_every_runtime_image_leaves_the_harness_out() -> None:
    for ignore in sorted((ROOT / "docker").glob("*.Dockerfile.dockerignore")):
        assert "services/reelplane/infra" in ignore.read_text().splitlines(), ignore.name


def test_the_runtime_commands_work_without_the_harness() -> None:
    code, out, err = run_without_harness("--help")
    assert code == 0, err
    for command in ("serve", "operator", "worker", "cluster", "infra"):
        assert command in out
    code, out, err = run_without_harness("operator", "run", "--help")
    assert code == 0, err
    assert "--peering" in out


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("cluster", "status"), "cluster"),
        (("infra", "status"), "infra status"),
        (("infra", "up", "kafka"), "infra up"),
    ],
)
def test_harness_commands_say_they_need_a_source_checkout(
    args: tuple[str, ...], command: str
) -> None:
    code, out, err = run_without_harness(*args)
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [
        f"reelplane: error: `reelplane {command}` needs a source checkout: this installation "
        "has no local harness (reelplane.infra; the runtime images leave it out)"
    ]
