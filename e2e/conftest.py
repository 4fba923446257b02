"""e2e scenarios use the same session fixtures as tests/ (the local control plane,
the real-servers harness), and kubectl/helm on that control plane."""

import pytest
from tests.conftest import cluster, harness  # noqa: F401  (re-exported fixtures)

from e2e.operator_support import Kubectl
from reelplane.infra.cluster import LocalCluster


@pytest.fixture(scope="session")
def k8s(cluster: LocalCluster) -> Kubectl:  # noqa: F811  (the fixture above)
    """kubectl and helm as the cluster admin."""
    return Kubectl(cluster.kubectl, cluster.kubeconfig, cluster.helm)
