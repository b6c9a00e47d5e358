"""Where the locally built binaries are looked up, and what a missing one says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from modelrelease.errors import StackError
from modelrelease_localstack.assets import built_binary
from modelrelease_localstack.controlplane import KUBE_VERSION
from modelrelease_localstack.kubenode.dns import COREDNS_VERSION, coredns_binary
from modelrelease_localstack.metrics_server import VERSION as METRICS_SERVER_VERSION
from modelrelease_localstack.metrics_server import metrics_server_binary
from modelrelease_localstack.prometheus_server import VERSION, prometheus_binary

pytestmark = pytest.mark.integration


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_variable_wins_over_the_cache(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mine = _executable(tmp_path / "bin" / "prometheus")
    monkeypatch.setenv("PROMETHEUS", str(mine))
    monkeypatch.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(tmp_path / "empty-cache"))
    assert prometheus_binary() == mine


def test_the_build_cache_is_used_when_the_variable_is_unset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COREDNS", raising=False)
    monkeypatch.delenv("PROMETHEUS", raising=False)
    monkeypatch.delenv("METRICS_SERVER", raising=False)
    monkeypatch.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(tmp_path))
    dns = _executable(tmp_path / "coredns" / COREDNS_VERSION / "coredns")
    prometheus = _executable(tmp_path / "prometheus" / VERSION / "prometheus")
    metrics = _executable(tmp_path / "metrics-server" / METRICS_SERVER_VERSION / "metrics-server")
    assert coredns_binary() == dns
    assert prometheus_binary() == prometheus
    assert metrics_server_binary() == metrics


@pytest.mark.parametrize("where", ["variable", "cache"])
def test_a_missing_binary_names_where_it_looked_and_the_fix(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_executable = tmp_path / "tool"
    not_executable.write_text("")
    monkeypatch.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(tmp_path / "cache"))
    if where == "variable":
        monkeypatch.setenv("MR_TEST_TOOL", str(not_executable))
        origin = f"MR_TEST_TOOL={not_executable}"
    else:
        monkeypatch.delenv("MR_TEST_TOOL", raising=False)
        origin = "the tool-assets cache"
    with pytest.raises(StackError) as failed:
        built_binary("MR_TEST_TOOL", "tool", "v1", "tool", script="tool-assets",
                     otherwise="set MR_TEST_TOOL")
    message = str(failed.value)
    assert f"missing in {origin}" in message, message
    assert "run `scripts/tool-assets`" in message and message.endswith("or set MR_TEST_TOOL")


def _script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = Path(__file__).resolve().parents[2] / "scripts" / name
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, check=False)


def test_kube_assets_builds_only_what_it_is_asked_for(tmp_path: Path) -> None:
    env = {"MODELRELEASE_BUILD__CACHE_DIR": str(tmp_path), "GO": "/nonexistent/go"}
    refused = _script("kube-assets", {**env, "KUBE_ASSETS_ONLY": "coredns kubeadm"})
    assert refused.returncode == 1
    assert "KUBE_ASSETS_ONLY names 'kubeadm': not one of" in refused.stderr, refused.stderr
    assert "coredns metrics-server" in refused.stderr
    # what is in the cache is not built again: no Go toolchain is even looked for
    dns = _executable(tmp_path / "coredns" / COREDNS_VERSION / "coredns")
    metrics = _executable(tmp_path / "metrics-server" / METRICS_SERVER_VERSION / "metrics-server")
    only = _script("kube-assets", {**env, "KUBE_ASSETS_ONLY": "coredns metrics-server"})
    assert only.returncode == 0, only.stderr
    assert only.stdout.strip().splitlines()[-1] == str(tmp_path / "kube" / KUBE_VERSION)
    assert _script("coredns-assets", env).stdout.strip() == str(dns)
    assert _script("metrics-server-assets", env).stdout.strip() == str(metrics)
    # anything missing is built, so without Go it fails and says so
    missing = _script("kube-assets", {**env, "KUBE_ASSETS_ONLY": "kubelet"})
    assert missing.returncode == 1
    assert "GO=/nonexistent/go is not an executable" in missing.stderr, missing.stderr
