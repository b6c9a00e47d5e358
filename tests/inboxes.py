"""Where the notification tests' messages arrive: a real HTTP webhook receiver and a real
SMTP server (aiosmtpd), each on a free loopback port, keeping what they were sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Inbox:
    """What a webhook was posted: each request's JSON body, in order."""

    url: str
    posted: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def webhook_inbox() -> Iterator[Inbox]:
    """An HTTP server on 127.0.0.1 that answers 200 to every POST and keeps its JSON."""
    kept: list[dict[str, Any]] = []

    class Keep(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kept.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keep)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Inbox(f"http://127.0.0.1:{server.server_address[1]}/hooks/release", kept)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    """What an SMTP server received: each message, and who logged in."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def bodies(self) -> list[tuple[str, str]]:
        """Each message's subject and its text, decoded, with plain newlines."""
        return [(str(m["Subject"]), str(m.get_content()).replace("\r\n", "\n"))
                for m in self.messages]


@contextmanager
def smtp_mailbox(*, tls: tuple[Path, Path] | None = None,
                 users: dict[str, str] | None = None) -> Iterator[Mailbox]:
    """aiosmtpd on 127.0.0.1; ``tls``: (certificate, key) offered with STARTTLS; ``users``:
    logins it takes (only after STARTTLS), anyone else is refused."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP as SMTPServer
    from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

    from modelrelease_localstack.process import free_ports

    box = Mailbox(free_ports(1)[0])

    class Handler:
        async def handle_DATA(self, server: SMTPServer, session: Session,
                              envelope: Envelope) -> str:
            message = message_from_bytes(envelope.original_content or b"",
                                         policy=policy.default)
            assert isinstance(message, EmailMessage)
            box.messages.append(message)
            return "250 OK"

    def authenticate(server: SMTPServer, session: Session, envelope: Envelope,
                     mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and users and users.get(
                data.login.decode()) == data.password.decode():
            box.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port,
                            tls_context=context, require_starttls=context is not None,
                            authenticator=authenticate if users else None,
                            auth_require_tls=True)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
