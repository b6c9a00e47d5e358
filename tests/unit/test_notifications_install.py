"""deployments/notifications.yaml and `modelrelease notifications install`: what is checked
before Prefect is called (installing into a real Prefect: tests/flows/test_notifications.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from typer.testing import CliRunner

from modelrelease.adapters.prefect_automations import automations_of
from modelrelease.cli import app
from modelrelease.domain.notifications import EVENTS, Notice, Notification
from modelrelease.errors import InvalidInput

FILE = Path(__file__).resolve().parents[2] / "deployments" / "notifications.yaml"
pytestmark = pytest.mark.usefixtures("env")  # tests/unit/conftest.py


def test_the_shipped_automations_expect_every_notice_and_nothing_else() -> None:
    automations = automations_of(FILE)
    assert sorted(a["channel"] for a in automations) == ["email", "webhook"]
    for automation in automations:
        trigger = automation["trigger"]
        assert sorted(trigger["expect"]) == sorted(EVENTS.values())
        assert trigger["match"] == {"prefect.resource.id": "modelrelease.endpoint.*"}
        assert (trigger["posture"], trigger["threshold"], trigger["within"]) == (
            "Reactive", 1, 0)


@pytest.mark.parametrize("notice", list(Notice))
def test_every_message_names_endpoint_version_reason_and_run(notice: Notice) -> None:
    told = Notification(notice, "prod/iris", "7", f"why {notice}", "r-9", step=1)
    event = told.event(__import__("datetime").datetime(2026, 12, 6), "run-1",
                       "http://127.0.0.1:4200/runs/flow-run/run-1")
    strict = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for automation in automations_of(FILE):
        (action,) = automation["actions"]
        text = "\n".join(strict.from_string(action[part]).render(event=event)
                         for part in ("subject", "body"))
        for needed in ("prod/iris", "version 7", f"why {notice}",
                       "http://127.0.0.1:4200/runs/flow-run/run-1"):
            assert needed in text, (automation["name"], needed, text)


@pytest.mark.parametrize(("change", "said"), [
    pytest.param(lambda d: d["automations"][0].pop("channel"), "`channel` must be webhook "
                 "or email, not None", id="no-channel"),
    pytest.param(lambda d: d["automations"][1].update(channel="pager"), "not 'pager'",
                 id="unknown-channel"),
    pytest.param(lambda d: d["automations"][0]["trigger"].update(posture="Sometimes"),
                 "automation modelrelease-notify-webhook: ('trigger',", id="bad-trigger"),
    pytest.param(lambda d: d.clear(), "no `automations:` list", id="empty"),
])
def test_a_bad_automations_file_is_refused(tmp_path: Path, change: Any, said: str) -> None:
    document = yaml.safe_load(FILE.read_text())
    change(document)
    path = tmp_path / "notifications.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(InvalidInput, match=None) as refused:
        automations_of(path)
    assert said in refused.value.message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="No such file"):
        automations_of(tmp_path / "gone.yaml")


@pytest.mark.parametrize(("args", "said"), [
    pytest.param([], "give --webhook-url, or --email-to with --smtp-host and --email-from",
                 id="no-channel"),
    pytest.param(["--email-to", "a@example.test"], "--email-to needs --smtp-host and "
                 "--email-from; nothing installed", id="email-without-server"),
    pytest.param(["--email-to", "a@example.test", "--smtp-host", "h"], "--email-to needs "
                 "--email-from", id="email-without-from"),
    pytest.param(["--webhook-url", "http://127.0.0.1:1/h", "--smtp-host", "h"],
                 "the SMTP options need --email-to", id="smtp-without-email"),
    pytest.param(["--email-to", "a@example.test", "--smtp-host", "h", "--email-from", "f",
                  "--smtp-user", "u"], "--smtp-user needs its password in "
                 "MODELRELEASE_SMTP_PASSWORD", id="user-without-password"),
    pytest.param(["--email-to", "a@example.test", "--smtp-host", "h", "--email-from", "f",
                  "--smtp-security", "ssl"], "'starttls', 'none'",
                 id="unknown-security"),
    pytest.param(["--webhook-url", "http://127.0.0.1:1/h", "--file", "gone.yaml"],
                 "notifications gone.yaml", id="missing-file"),
])
def test_bad_install_arguments_are_plain_errors(args: list[str], said: str,
                                                env: pytest.MonkeyPatch) -> None:
    env.delenv("MODELRELEASE_SMTP_PASSWORD", raising=False)
    result = CliRunner().invoke(app, ["notifications", "install", *args])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())


def test_every_email_option_reaches_the_block(tmp_path: Path) -> None:
    from modelrelease.cli import email_block
    from modelrelease.domain.smtp import SmtpSecurity

    ca = tmp_path / "ca.pem"
    block = email_block(["a@example.test", "b@example.test"], "releases@example.test",
                        "smtp.example.test", 2525, SmtpSecurity.NONE, ca, "bot", "s3cret")
    assert block is not None
    assert (block.host, block.port, block.security, block.ca_file, block.username) == (
        "smtp.example.test", 2525, SmtpSecurity.NONE, str(ca), "bot")
    assert block.password is not None and block.password.get_secret_value() == "s3cret"
    assert (block.sender, block.to) == ("releases@example.test",
                                        ["a@example.test", "b@example.test"])
    # no login asked: the password in the environment is not saved
    plain = email_block(["a@example.test"], "r@example.test", "h", 587,
                        SmtpSecurity.STARTTLS, None, None, "s3cret")
    assert plain is not None and plain.username is None and plain.password is None
    assert plain.ca_file is None and plain.security is SmtpSecurity.STARTTLS
    assert email_block(None, None, None, 587, SmtpSecurity.STARTTLS, None, None, None) is None
