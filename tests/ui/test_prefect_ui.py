"""The Prefect UI in headless Chromium: a release started from the deployment's form.

Debian's ``chromium`` driven by Playwright (its own browsers are not downloaded). Each
step's screenshot is saved under ``test-output/ui/`` at the repository root.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelrelease.localstack.demo_model import register_iris_model
from modelrelease.localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint
from tests.kube import eventually
from tests.support import Deployed

pytestmark = pytest.mark.ui
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def endpoint(stack: Stack, deployed: Deployed) -> Iterator[Endpoint]:
    made = make_endpoint(stack, deployed.endpoints_dir)
    yield made
    made.file.unlink(missing_ok=True)
    made.core.delete_namespace(made.namespace)


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


def test_a_custom_run_started_in_the_ui_releases_and_shows_its_report(
        stack: Stack, deployed: Deployed, endpoint: Endpoint, page: Any) -> None:
    shots = SHOTS / "custom-run"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    taken: list[str] = []

    def shot(name: str) -> None:
        path = shots / f"{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path.name)

    register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                        alias="champion")
    ui = deployed.api_url.removesuffix("/api")
    page.goto(f"{ui}/deployments")
    page.get_by_role("link", name="release", exact=True).click()
    page.get_by_role("button", name="Run", exact=True).wait_for()
    shot("release-deployment")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").first.click()
    page.get_by_text("Endpoint", exact=True).wait_for()
    shot("custom-run-form")
    page.locator("textarea").first.fill(endpoint.name)
    page.get_by_role("button", name="int", exact=True).first.click()
    page.locator("input[type=number]").first.fill("1")
    shot("form-filled")
    page.get_by_role("button", name="Submit").click()
    def mine() -> list[dict[str, Any]]:
        return [r for r in deployed.runs("release")
                if r["parameters"]["request"].get("endpoint") == endpoint.name]

    run = eventually(lambda: (mine() or [None])[0], 30, "the run the form submitted")
    run_id = run["id"]
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # open the run from the deployment's run list; the list polls, and on a loaded machine
    # the new run may not be in it yet: reload, as a user would
    link = page.get_by_role("link", name=run["name"]).first
    try:
        link.wait_for(timeout=30_000)
    except PlaywrightTimeout:
        page.reload()
    link.click()
    page.wait_for_url(f"**/runs/flow-run/{run_id}**")
    shot("run-started")
    final = deployed.wait_final(run_id, 300)
    assert final["state_type"] == "COMPLETED", final["state"]
    assert final["parameters"]["request"]["endpoint"] == endpoint.name
    assert final["parameters"]["request"]["version"] == 1
    assert [r["id"] for r in mine()] == [run_id]  # one submit, one run
    page.reload()
    page.get_by_text("Completed").first.wait_for()
    shot("run-completed")
    page.get_by_text("Artifacts", exact=True).first.click()
    deadline = time.monotonic() + 30
    while not page.get_by_text("release-", exact=False).count() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    page.get_by_text("release-", exact=False).first.click()
    page.get_by_text("Promoted").first.wait_for()
    shot("release-report")
    assert endpoint.status()["phase"] == "Promoted"
    print(f"screenshots in {shots}: {', '.join(taken)}")
    assert len(taken) == 6
