"""domain.schedules: the rollback-drill schedules in prefect.yaml, from the endpoint files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelrelease.domain.schedules import BEGIN, END, drill_schedules, with_schedules
from modelrelease.spec import ModelEndpoint, parse_endpoint

REPO = Path(__file__).resolve().parents[2]


def _endpoint(drill: dict[str, Any] | None) -> ModelEndpoint:
    spec: dict[str, Any] = {"model": {"name": "m", "alias": "champion"},
                            "image": {"repository": "r.example/ml/m", "base": "r.example/b:1"},
                            "resources": {"cpu": "1", "memory": "1Gi"}}
    if drill is not None:
        spec["drill"] = drill
    return parse_endpoint({"apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
                           "metadata": {"name": "m", "namespace": "ml"}, "spec": spec})


def test_one_schedule_per_endpoint_with_a_drill_in_name_order() -> None:
    endpoints = {"zeta": _endpoint({"schedule": "@daily", "fault": "errors"}),
                 "none": _endpoint(None),
                 "alpha": _endpoint({"schedule": "0 3 * * 1"})}
    assert drill_schedules(endpoints) == [
        {"cron": "0 3 * * 1", "timezone": "UTC", "slug": "drill-alpha",
         "parameters": {"endpoint": "alpha", "fault": "latency"}},
        {"cron": "@daily", "timezone": "UTC", "slug": "drill-zeta",
         "parameters": {"endpoint": "zeta", "fault": "errors"}},
    ]


def test_the_block_between_the_markers_is_replaced_with_its_indent() -> None:
    text = f"a:\n  b: 1\n  {BEGIN}\n  old: 1\n  {END}\nc: 2\n"
    assert with_schedules(text, "schedules: []\n") == (
        f"a:\n  b: 1\n  {BEGIN}\n  schedules: []\n  {END}\nc: 2\n")


@pytest.mark.parametrize("text", ["no markers", f"{END}\n{BEGIN}\n"])
def test_missing_markers_are_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="lacks the lines"):
        with_schedules(text, "")


def test_the_committed_prefect_yaml_is_current() -> None:
    done = subprocess.run([str(REPO / "scripts/gen-prefect"), "--check"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
