"""``SmtpEmail`` against a real SMTP server (aiosmtpd on loopback): plain, and STARTTLS with
a private CA and a login, as a company relay would want; and what it refuses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prefect.blocks.abstract import NotificationError
from pydantic import SecretStr

from modelrelease.adapters.email_block import SmtpEmail
from modelrelease_localstack.pki import Pki
from tests.inboxes import smtp_mailbox

pytestmark = pytest.mark.integration


def send(block: SmtpEmail, body: str, subject: str) -> None:
    with block.raise_on_failure():
        asyncio.run(block.notify(body, subject))


def test_plain_smtp_delivers_one_message_to_every_recipient() -> None:
    with smtp_mailbox() as box:
        block = SmtpEmail(host="127.0.0.1", port=box.port, security="none",
                          sender="releases@example.test",
                          to=["oncall@example.test", "ml@example.test"])
        send(block, "prod/iris version 2: promoted\nreason: all checks passed", "promoted")
    (message,) = box.messages
    assert message["Subject"] == "promoted"
    assert message["From"] == "releases@example.test"
    assert message["To"] == "oncall@example.test, ml@example.test"
    assert box.bodies()[0][1] == "prod/iris version 2: promoted\nreason: all checks passed\n"
    assert box.logins == []


def test_starttls_with_a_private_ca_and_a_login(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    served = pki.issue("smtp", "127.0.0.1", server=True, ips=["127.0.0.1"])
    with smtp_mailbox(tls=(served.cert, served.key), users={"releases": "s3cret"}) as box:
        block = SmtpEmail(host="127.0.0.1", port=box.port, ca_file=str(pki.ca.cert),
                          username="releases", password=SecretStr("s3cret"),
                          sender="releases@example.test", to=["oncall@example.test"])
        assert block.security == "starttls"  # the default
        send(block, "body", "over TLS")
        # without the CA the server's certificate is not trusted: nothing is sent
        untrusted = block.model_copy(update={"ca_file": None})
        with pytest.raises(NotificationError, match="CERTIFICATE_VERIFY_FAILED"):
            send(untrusted, "body", "untrusted")
        wrong = block.model_copy(update={"password": SecretStr("guess")})
        with pytest.raises(NotificationError, match=r"535|uthentication"):
            send(wrong, "body", "wrong password")
    assert [m["Subject"] for m in box.messages] == ["over TLS"]
    assert box.logins == ["releases"]


def test_starttls_asked_of_a_server_without_it_sends_nothing() -> None:
    with smtp_mailbox() as box:
        block = SmtpEmail(host="127.0.0.1", port=box.port, sender="releases@example.test",
                          to=["oncall@example.test"])
        with pytest.raises(NotificationError, match=f"through 127.0.0.1:{box.port}.*STARTTLS"):
            send(block, "body", "plain text")
        # outside an automation (raise_on_failure off) a failure is logged, not raised
        asyncio.run(block.notify("body", "logged"))
    assert box.messages == []


def test_a_server_that_is_not_there_is_a_notification_error() -> None:
    from modelrelease_localstack.process import free_ports

    block = SmtpEmail(host="127.0.0.1", port=free_ports(1)[0], security="none",
                      sender="releases@example.test", to=["oncall@example.test"], timeout=2)
    with pytest.raises(NotificationError, match="Connection refused"):
        send(block, "body", "nobody")


def test_a_server_that_never_answers_times_out_after_the_blocks_timeout() -> None:
    """It takes the connection and never greets: the send gives up after ``timeout``.

    Without the timeout the send would wait for ever (pytest-timeout would end the test).
    """
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts
        block = SmtpEmail(host="127.0.0.1", port=silent.getsockname()[1], security="none",
                          sender="releases@example.test", to=["oncall@example.test"],
                          timeout=0.5)
        with pytest.raises(NotificationError, match="timed out"):
            send(block, "body", "nobody home")


@pytest.mark.parametrize(("fields", "problem"), [
    pytest.param({"to": []}, "to", id="no-recipient"),
    pytest.param({"port": 0}, "port", id="port-0"),
    pytest.param({"security": "ssl"}, "security", id="unknown-security"),
])
def test_bad_settings_are_refused(fields: dict[str, object], problem: str) -> None:
    from pydantic import ValidationError

    good = {"host": "smtp.example.test", "sender": "a@example.test", "to": ["b@example.test"]}
    with pytest.raises(ValidationError, match=problem):
        SmtpEmail(**{**good, **fields})
