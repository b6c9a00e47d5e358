"""Notifications end to end (issue 14 item 7): `modelrelease notifications install` puts
the automations of deployments/notifications.yaml into the stack's real Prefect, with a
webhook block pointed at a local receiver and an e-mail block at a local SMTP server.

A real release run from the `release` deployment posts its milestones as events; Prefect's
automations turn each into one Slack-style webhook post and one e-mail, naming the endpoint,
the version, the reason and linking the run. The other outcomes (rolled back, aborted, a
drill's result) are posted to Prefect here as the flows post them (their posting by a real
release is in tests/fast/test_release_notices.py and, for abort and rollback, the flow
tests of test_cancel.py and test_deployments.py); each again gives one message per channel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from modelrelease.adapters.prefect_events import PrefectEvents
from modelrelease.domain.notifications import EVENTS, Notice, Notification
from modelrelease_localstack.demo_model import register_iris_model
from tests.e2e.helpers import Endpoint
from tests.inboxes import Inbox, Mailbox, smtp_mailbox, webhook_inbox
from tests.kube import eventually
from tests.support import Deployed

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def channels(deployed: Deployed) -> Any:
    """The receivers, and the automations installed for them (removed afterwards)."""
    with webhook_inbox() as inbox, smtp_mailbox() as mailbox:
        installed = subprocess.run(
            [sys.executable, "-m", "modelrelease.cli", "notifications", "install",
             "--webhook-url", inbox.url, "--email-to", "oncall@example.test",
             "--email-from", "releases@example.test", "--smtp-host", "127.0.0.1",
             "--smtp-port", str(mailbox.port), "--smtp-security", "none"],
            env={**os.environ, "PREFECT_API_URL": deployed.api_url}, cwd=REPO,
            capture_output=True, text=True, timeout=120)
        assert installed.returncode == 0, installed.stderr
        automations = [json.loads(line) for line in installed.stdout.splitlines()]
        assert {(a["name"], a["channel"], a["block"]) for a in automations} == {
            ("modelrelease-notify-webhook", "webhook", "modelrelease-webhook"),
            ("modelrelease-notify-email", "email", "modelrelease-email")}
        try:
            yield inbox, mailbox
        finally:
            for automation in automations:
                deployed.call("DELETE", f"/automations/{automation['id']}")


def posts_about(inbox: Inbox, endpoint: str) -> list[str]:
    return [post["text"] for post in inbox.posted if endpoint in post["text"]]


def mails_about(mailbox: Mailbox, endpoint: str) -> list[tuple[str, str]]:
    return [(subject, body) for subject, body in mailbox.bodies() if endpoint in subject]


def test_each_milestone_is_one_message_per_channel(deployed: Deployed, endpoint: Endpoint,
                                                   channels: tuple[Inbox, Mailbox]) -> None:
    inbox, mailbox = channels
    where = f"{endpoint.namespace}/{endpoint.name}"
    register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                        alias="champion")
    answer = deployed.create_run("release", {"request": {"endpoint": endpoint.name}})
    assert answer.status_code == 201, answer.text
    run = answer.json()
    final = deployed.wait_final(run["id"], 300)
    assert final["state_type"] == "COMPLETED", final["state"]

    told = eventually(lambda: (names := deployed.told(run["id"]))
                      and names[-1] == EVENTS[Notice.PROMOTED] and names, 60,
                      "the run's promoted event")
    steps = told.count(EVENTS[Notice.STEP_PASSED])
    assert told == [EVENTS[Notice.STARTED], *[EVENTS[Notice.STEP_PASSED]] * steps,
                    EVENTS[Notice.PROMOTED]] and steps >= 1
    titles = [f"{where} version 1: started",
              *[f"{where} version 1: step {n} passed" for n in range(1, steps + 1)],
              f"{where} version 1: promoted"]
    link = f"/flow-run/{run['id']}"  # in the Prefect UI: UI_URL/flow-runs/flow-run/ID

    posts = eventually(lambda: len(got := posts_about(inbox, where)) >= len(titles) and got,
                       60, f"{len(titles)} webhook posts")
    mails = eventually(lambda: len(got := mails_about(mailbox, where)) >= len(titles) and got,
                       60, f"{len(titles)} e-mails")
    # one message per milestone and channel, each with the reason and the run's link
    assert sorted(post.splitlines()[0] for post in posts) == sorted(f"*{t}*" for t in titles)
    assert sorted(subject for subject, _ in mails) == sorted(
        f"[modelrelease] {t}" for t in titles)
    status = endpoint.status()
    promoted_post = next(p for p in posts if p.startswith(f"*{titles[-1]}*"))
    assert status["reason"] in promoted_post and link in promoted_post
    for _, body in mails:
        assert f"Endpoint: {where}" in body and "Version:  1" in body and link in body
        assert "Reason:   " in body and len(body.split("Reason:   ")[1].split("\n")[0]) > 5

    # the other outcomes, posted as the flows post them, linked to the same run
    others = [Notice.ROLLED_BACK, Notice.ABORTED, Notice.DRILL_PASSED, Notice.DRILL_FAILED]
    run_url = promoted_post.split("<")[1].split("|")[0]  # the run's link as the flow gave it
    assert run_url.startswith(deployed.api_url.removesuffix("/api")) and run_url.endswith(link)
    with PrefectEvents(deployed.api_url) as events:
        for notice in others:
            events.tell(Notification(notice, where, "2", f"because {notice}", "r-other"),
                        run["id"], run_url)
    expected = len(titles) + len(others)
    posts = eventually(lambda: len(got := posts_about(inbox, where)) >= expected and got, 60,
                       f"{expected} webhook posts")
    mails = eventually(lambda: len(got := mails_about(mailbox, where)) >= expected and got,
                       60, f"{expected} e-mails")
    for notice in others:
        title = Notification(notice, where, "2", "").title
        (post,) = [p for p in posts if p.startswith(f"*{title}*")]
        assert f"because {notice}" in post and run_url in post
        (mail,) = [body for subject, body in mails if subject == f"[modelrelease] {title}"]
        assert f"because {notice}" in mail and run_url in mail
    assert max(Counter(posts).values()) == 1 and len(mails) == expected
