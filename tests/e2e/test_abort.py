"""`modelrelease abort` stops a release in flight on the real stack (issue 14 item 4).

The release runs as a CLI subprocess, as an operator's would; a second CLI aborts it
mid-hold. The canary goes, the primary keeps serving untouched, the lock is released,
and the status, the MLflow tags and the release's own output say who aborted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelrelease.domain.notifications import EVENTS, Notice
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import assert_aborted, background_client, cli_env, version_2_pending
from tests.kube import eventually
from tests.support import told_about

pytestmark = pytest.mark.e2e

HOLD_S = 90
"""Longer than the whole test needs: an abort that waited for the hold would show."""


def test_an_abort_mid_hold_rolls_back_at_once_and_says_who(stack: Stack, crd: None,
                                                          tmp_path: Path) -> None:
    made, before = version_2_pending(stack, tmp_path, HOLD_S)
    env = cli_env(made)
    try:
        with background_client(made) as background:
            release = subprocess.Popen(
                [sys.executable, "-m", "modelrelease.cli", "release", str(made.file)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            eventually(lambda: made.status().get("phase") == "Analysing", 120, "Analysing")
            asked = time.monotonic()
            aborted = subprocess.run(
                [sys.executable, "-m", "modelrelease.cli", "abort", str(made.file), "--by",
                 "tester@e2e", "--wait", "60"], env=env, capture_output=True, text=True,
                timeout=90)
            out, err = release.communicate(timeout=60)
            took = time.monotonic() - asked
        assert aborted.returncode == 0, aborted.stderr
        said = json.loads(aborted.stdout.strip().splitlines()[-1])
        assert said["phase"] == "RolledBack"
        assert "aborted by tester@e2e in phase Analysing" in said["reason"]
        assert release.returncode == 1, err  # rolled back
        result = json.loads(out.strip().splitlines()[-1])
        assert result["outcome"] == "rolled_back"
        assert "aborted by tester@e2e" in result["reason"]
        assert took < HOLD_S - 30, took  # one look of the hold at most, not the hold
        assert background.failed == [], background.failed[:5]
        assert_aborted(made, before, "aborted by tester@e2e in phase Analysing")

        status = made.status()
        again = subprocess.run([sys.executable, "-m", "modelrelease.cli", "abort",
                                str(made.file)], env=env, capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 2
        assert "nothing in flight (phase RolledBack); nothing changed" in again.stderr
        assert made.status() == status  # the refused abort changed nothing
    finally:
        made.core.delete_namespace(made.namespace)


def test_ctrl_c_on_a_release_rolls_it_back_before_exiting(stack: Stack, crd: None,
                                                         tmp_path: Path) -> None:
    made, before = version_2_pending(stack, tmp_path, HOLD_S)
    prefect = stack.env()["PREFECT_API_URL"]  # the CLI tells Prefect too, when it has one
    try:
        with background_client(made) as background:
            # as from a terminal: a suite started in the background by a script may have
            # inherited SIGINT ignored, and a child keeps that
            release = subprocess.Popen(
                [sys.executable, "-m", "modelrelease.cli", "release", str(made.file)],
                env={**cli_env(made), "PREFECT_API_URL": prefect}, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            eventually(lambda: made.status().get("phase") == "Analysing", 120, "Analysing")
            asked = time.monotonic()
            release.send_signal(signal.SIGINT)
            out, err = release.communicate(timeout=60)
            took = time.monotonic() - asked
        assert release.returncode == 130, err
        assert "interrupted (Ctrl-C); a release in flight was rolled back" in err
        assert json.loads(out.strip().splitlines()[-1])["outcome"] == "failed"
        assert took < 30, took
        assert background.failed == [], background.failed[:5]
        assert_aborted(made, before, "aborted by an interrupt (Ctrl-C) in phase Analysing")
        # the CLI told Prefect (it has one here): started, then aborted
        told = [EVENTS[Notice.STARTED], EVENTS[Notice.ABORTED]]
        eventually(lambda: told_about(prefect, made.namespace, made.name) == told, 30,
                   f"the CLI's events {told}")
    finally:
        made.core.delete_namespace(made.namespace)
