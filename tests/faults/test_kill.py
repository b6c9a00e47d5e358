"""SIGKILL the release process at each phase in turn; a re-run must converge (issue #7).

One endpoint serves the whole module: version 1 is primary, then each kill point releases
a version of its own as a ``modelrelease release`` subprocess, kills its process group when
the release reaches that point, and re-runs the same release in-process. The re-run must
resume or roll back, leave no canary, never put an unverified digest on the primary, and
leave the ModelEndpoint status and the MLflow tags telling the same story. A background
client calls the live Service all along; every request it loses is counted and printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelrelease_localstack.demo_model import register_faulty_model, register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, background_client, cli_env, make_endpoint, sampled
from tests.kube import eventually

pytestmark = pytest.mark.faults
STEPS = [{"weight": 50, "hold": "6s"}]
CHECKS = {"latency": {"p99Ms": 5000, "maxRegression": 3.0}, "maxErrorRate": 0.01,
          "minRequests": 100}
"""Lenient SLOs and regression: a loaded 2-core machine must not fail a good version. These
tests are about converging after a kill, not about judging latency; a good version's cold
canary was once judged 55% slower than the warm primary (p95 25.7 vs 16.6 ms) while the
machine was busy, and rolled back."""
LOCK_TTL_S = 10
CRASH_LOOP = "CrashLoopBackOff"
"""Why a good version may still be rolled back here: on an overloaded 2-core machine its
server can miss the liveness probe's 25 s to answer /ping and be killed in a loop. That
rollback converges (and is checked like any other); every other reason fails the test."""

Reached = Callable[[Endpoint, list[str]], bool]


@dataclass(frozen=True)
class KillPoint:
    """Where to kill a release, and which version it releases (None: a new faulty one)."""

    name: str
    reached: Reached
    version: str | None

    @property
    def outcome(self) -> str:
        return "promoted" if self.version else "rolled_back"


def _phase(phase: str) -> Reached:
    """The release entered ``phase``: its own line said so (``→Promoting: ...``, printed
    before the phase's work starts), or, failing that, its status does. The line comes
    first: a promotion of one ready replica can be over before a status read (CI red at
    f9d118e: the kill missed a Promoting that lasted less than one look)."""
    return lambda endpoint, lines: (any(f"→{phase}:" in line for line in lines)
                                    or endpoint.status().get("phase") == phase)


KILL_POINTS = [  # in this order: each good one changes the primary between 1 and 2
    KillPoint("after_build", lambda endpoint, lines: any(": image " in x for x in lines), "2"),
    KillPoint("after_canary_create",
              lambda endpoint, lines: endpoint.image("canary") is not None, "1"),
    KillPoint("mid_step", _phase("Analysing"), "2"),
    KillPoint("mid_promotion", _phase("Promoting"), "1"),
    KillPoint("mid_rollback", _phase("RollingBack"), None),  # its smoke test fails
]


@dataclass
class Tally:
    """Every injection of the module, for the closing line."""

    lines: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    made = Tally()
    yield made
    print(json.dumps({"faults": "kill", "injections": len(made.lines),
                      "converged": sum(x["converged"] for x in made.lines),
                      "lost_requests": sum(x["lost_requests"] for x in made.lines)}))


@pytest.fixture(scope="module")
def live(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Endpoint]:
    """An endpoint whose primary serves version 1, shared by every kill point.

    Versions 1 and 2 are good; the kill points release them in turn (each release is then
    a real change of primary), so only one more version, a faulty one, is registered. A
    lock of 10 s (not 30 s) keeps the re-runs' wait for the killed holder's lease short.
    """
    made = make_endpoint(stack, tmp_path_factory.mktemp("kill"), steps=STEPS, checks=CHECKS)
    made.settings = made.settings.model_copy(update={"release": made.settings.release.model_copy(
        update={"lock_ttl_s": LOCK_TTL_S})})
    tracking = str(made.settings.mlflow.tracking_uri)
    register_iris_model(tracking, made.model, alias="champion")
    assert made.release().outcome == "promoted"
    register_iris_model(tracking, made.model, c=0.2)
    yield made
    made.core.delete_namespace(made.namespace)


def primary_images(endpoint: Endpoint) -> AbstractContextManager[set[str]]:
    """Every image the primary Deployment is seen with meanwhile."""
    return sampled(lambda: [endpoint.image("primary") or ""])


def _kill_at(endpoint: Endpoint, version: str, point: KillPoint) -> list[str]:
    """Run the release as a subprocess and SIGKILL its process group at ``point``."""
    proc = subprocess.Popen([sys.executable, "-m", "modelrelease.cli", "release",
                             str(endpoint.file), "--version", version],
                            env=cli_env(endpoint), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    out, lines = proc.stdout, []
    reader = threading.Thread(target=lambda: lines.extend(iter(out.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    try:
        while not point.reached(endpoint, lines):
            assert proc.poll() is None, f"release ended before {point.name}: {lines}"
            assert time.monotonic() < deadline, f"{point.name} not reached: {lines}"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        reader.join(timeout=5)
    return lines


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
def test_killed_release_converges_on_rerun(live: Endpoint, tally: Tally,
                                           point: KillPoint) -> None:
    tracking = str(live.settings.mlflow.tracking_uri)
    version = point.version or register_faulty_model(tracking, live.model, "wrong_shape")
    before = live.status()["primary"]
    old_image = live.image("primary")
    with background_client(live) as background, primary_images(live) as seen:
        lines = _kill_at(live, version, point)
        killed_in = live.status().get("phase")
        canary_at_kill = live.image("canary") is not None
        began = time.monotonic()
        result = live.release(version=int(version))
        rerun_s = time.monotonic() - began
        eventually(lambda: live.image("canary") is None, 60, "no orphaned canary")
    status = live.status()
    tags = live.mlflow_tags(version)
    promoted = result.outcome == "promoted"
    digest = result.image.split("@")[1]
    serving = live.image("primary") or ""
    expected_primary = (version, digest) if promoted else (before["version"], before["digest"])
    last = status["history"][-1]
    verified = {old_image} | ({result.image} if point.version else set())
    checks = {  # the end state tells one story, whichever outcome the re-run reached
        "outcome": result.outcome in ("promoted", "rolled_back") and result.version == version,
        "primary_image": serving.endswith(expected_primary[1])
        and (promoted or serving == old_image),
        "primary_only_verified": seen <= verified,
        "status_primary": (status["primary"]["version"], status["primary"]["digest"])
        == expected_primary,
        "status_phase": status["phase"] == ("Promoted" if promoted else "RolledBack")
        and not status.get("canary"),
        "history": (last["version"], last["digest"], last["phase"], last["releaseId"])
        == (version, digest, status["phase"], status["releaseId"]),
        "mlflow_tags": tags.get("modelrelease.status") == result.outcome
        and tags.get("modelrelease.image_digest") == digest
        and tags.get("modelrelease.release_id") == status["releaseId"]
        and (promoted or bool(tags.get("modelrelease.reason"))),
        # a rollback finished by the re-run keeps its cause (kept in status.reason)
        "rollback_cause_kept": promoted or "resumed rollback" not in tags.get(
            "modelrelease.reason", ""),
    }
    if promoted:
        from mlflow.tracking import MlflowClient

        production = MlflowClient(tracking_uri=tracking).get_model_version_by_alias(
            live.model, "production")
        checks["production_alias"] = production.version == version
    line = {"fault": point.name, "killed_in": killed_in, "canary_at_kill": canary_at_kill,
            "converged": all(checks.values()),
            "outcome": result.outcome, "expected": point.outcome, "rerun_s": round(rerun_s, 1),
            "lost_requests": len(background.failed), "ok_requests": background.ok}
    tally.lines.append(line)
    if result.outcome != point.outcome:
        line["reason"] = result.reason[:160]
    print(json.dumps(line))
    assert all(checks.values()), (checks, result.reason, status, tags, lines[-5:])
    assert result.outcome == point.outcome or (
        point.version is not None and CRASH_LOOP in result.reason), result.reason
    assert background.ok > 50, background.ok


def test_a_rerun_for_another_version_rolls_the_killed_release_back_then_releases_its_own(
        live: Endpoint, tally: Tally) -> None:
    """Killed mid-step releasing one version; the next run asks for a newer one.

    The unfinished release is rolled back first (its canary gone, its version tagged
    rolled back, "superseded", in MLflow and in the history), then the asked-for version
    is released from the beginning and promoted. Before, the newer version was tagged
    rolled back without ever being deployed.
    """
    tracking = str(live.settings.mlflow.tracking_uri)
    killed = "1" if live.status()["primary"]["version"] == "2" else "2"
    newer = register_iris_model(tracking, live.model, c=0.5)
    with background_client(live) as background, primary_images(live) as seen:
        lines = _kill_at(live, killed, KILL_POINTS[2])  # mid_step
        killed_digest = live.status()["canary"]["digest"]
        old_image = live.image("primary")
        result = live.release(version=int(newer))
        eventually(lambda: live.image("canary") is None, 60, "no orphaned canary")
    status = live.status()
    undone, released = status["history"][-2:]
    killed_tags, newer_tags = live.mlflow_tags(killed), live.mlflow_tags(newer)
    checks = {
        "outcome": result.outcome == "promoted" and result.version == newer,
        "killed_rolled_back": (undone["version"], undone["phase"], undone["digest"])
        == (killed, "RolledBack", killed_digest) and "superseded" in undone["reason"]
        and f"version {newer} is released instead" in undone["reason"],
        "killed_tags": killed_tags.get("modelrelease.status") == "rolled_back"
        and "superseded" in killed_tags.get("modelrelease.reason", "")
        and killed_tags.get("modelrelease.image_digest") == killed_digest,
        "newer_released": (released["version"], released["phase"]) == (newer, "Promoted")
        and status["primary"]["version"] == newer and status["phase"] == "Promoted",
        "newer_tags": newer_tags.get("modelrelease.status") == "promoted",
        "primary_only_verified": seen <= {old_image, result.image},
    }
    line = {"fault": "killed_then_other_version", "converged": all(checks.values()),
            "outcome": result.outcome, "lost_requests": len(background.failed),
            "ok_requests": background.ok}
    tally.lines.append(line)
    print(json.dumps(line))
    assert all(checks.values()), (checks, result.reason, status, killed_tags, lines[-5:])
