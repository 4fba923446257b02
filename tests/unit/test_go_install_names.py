"""`go install` names a binary after its package path, skipping a major-version suffix."""

from __future__ import annotations

import pytest

from reelplane.infra.harness import go_binary_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("package", "binary"),
    [
        ("github.com/tsenart/vegeta/v12", "vegeta"),
        ("github.com/tus/tusd/v2/cmd/tusd", "tusd"),
        ("sigs.k8s.io/kwok/cmd/kwok", "kwok"),
        ("example.com/tool/v1", "v1"),
        ("example.com/v2", "example.com"),
        ("example.com/vtool", "vtool"),
    ],
)
def test_binary_is_named_after_the_last_non_version_element(package: str, binary: str) -> None:
    assert go_binary_name(package) == binary
