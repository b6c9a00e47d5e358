"""The stack's Prefect server: its access log, written only when asked for.

benchmarks/jobs.py turns it on to count a release's Prefect API calls; the stack leaves it
off (the workers' polls would grow the log).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modelrelease_localstack.prefect_server import LocalPrefect
from tests.support import prefect_call

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("access_log", [False, True])
def test_the_access_log_is_written_only_when_asked(tmp_path: Path, access_log: bool) -> None:
    with LocalPrefect(tmp_path / "prefect", access_log=access_log) as prefect:
        assert prefect_call(prefect.api_url, "POST", "/flow_runs/filter", {}).status_code == 200
        time.sleep(0.5)  # the log line is written after the answer
    lines = (tmp_path / "prefect" / "prefect.log").read_text().splitlines()
    calls = [line for line in lines if '"POST /api/flow_runs/filter HTTP/1.1" 200' in line]
    assert len(calls) == (1 if access_log else 0), lines[-20:]
