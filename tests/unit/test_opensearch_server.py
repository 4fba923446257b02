"""The OpenSearch server's assembly and command line (pure: nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelplane.infra.servers.opensearch import MODULES, OPENSEARCH_VERSION, OpenSearch

pytestmark = pytest.mark.unit


def test_each_module_descriptor_names_its_plugin_class_and_the_server_version() -> None:
    by_name = {m.name: m.descriptor() for m in MODULES}
    assert set(by_name) == {"transport-netty4", "lang-painless", "analysis-common", "mapper-extras"}
    netty = dict(line.split("=", 1) for line in by_name["transport-netty4"].splitlines())
    assert netty["classname"] == "org.opensearch.transport.Netty4Plugin"
    assert netty["opensearch.version"] == OPENSEARCH_VERSION
    common = dict(line.split("=", 1) for line in by_name["analysis-common"].splitlines())
    assert common["extended.plugins"] == "lang-painless"  # it loads painless's classes


def test_the_node_is_one_loopback_node_on_the_harness_ports(tmp_path: Path) -> None:
    server = OpenSearch(tmp_path)
    yml = server._yaml()
    assert "discovery.type: single-node" in yml
    assert "network.host: 127.0.0.1" in yml
    assert f"http.port: {server.port}" in yml and server.url == "opensearch://127.0.0.1:19200"


def test_as_root_the_jvm_runs_as_nobody_with_a_small_heap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reelplane.infra.servers.opensearch.os.geteuid", lambda: 0)
    cmd, env = OpenSearch(tmp_path).command()
    assert Path(cmd[0]).name == "setpriv" and "--reuid=65534" in cmd
    assert "-Xmx512m" in cmd and cmd[-1] == "org.opensearch.bootstrap.OpenSearch"
    assert env["OPENSEARCH_JAVA_OPTS"] == ""
    monkeypatch.setattr("reelplane.infra.servers.opensearch.os.geteuid", lambda: 1000)
    cmd, _ = OpenSearch(tmp_path).command()
    assert cmd[0] == "java"
