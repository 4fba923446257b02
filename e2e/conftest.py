"""e2e scenarios use the same session fixtures as tests/ (the local control plane,
the real-servers harness)."""

from tests.conftest import cluster, harness  # noqa: F401  (re-exported fixtures)
