"""``SmtpEmail``: a Prefect notification block that sends e-mail through an SMTP server.

Prefect's own e-mail block sends through SendGrid's API only; platform teams mostly have
an SMTP relay. The block is registered with Prefect as a collection (the entry point
``prefect.collections`` in pyproject.toml), so a Prefect server in the same environment
can load it when an automation's ``send-notification`` action names one
(``deployments/notifications.yaml``, installed by ``modelrelease notifications install``).

Example:
    >>> SmtpEmail(host="smtp.example.com", sender="releases@example.com",
    ...           to=["ml-oncall@example.com"]).save("modelrelease-email")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage

from prefect.blocks.abstract import NotificationBlock, NotificationError
from pydantic import Field, SecretStr

from modelrelease.domain.smtp import SmtpSecurity


class SmtpEmail(NotificationBlock):
    """E-mail through an SMTP server: plain, or upgraded with STARTTLS, with optional login."""

    _block_type_name = "modelrelease SMTP e-mail"
    _block_type_slug = "modelrelease-smtp-email"
    _description = "Sends notifications as e-mail through an SMTP server (modelrelease)."

    host: str = Field(description="The SMTP server's host name or address.")
    port: int = Field(default=587, ge=1, le=65535, description="The SMTP server's port.")
    security: SmtpSecurity = Field(
        default=SmtpSecurity.STARTTLS,
        description="starttls: upgrade the connection to TLS before anything is sent "
                    "(refused if the server cannot); none: plain text, for a relay on "
                    "the same host or network only.")
    ca_file: str | None = Field(
        default=None, description="A CA bundle to trust for the server's certificate "
                                  "(default: the system's).")
    username: str | None = Field(default=None, description="Login name, if the server "
                                                           "asks for one.")
    password: SecretStr | None = Field(default=None, description="Login password.")
    sender: str = Field(description="The From address.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds per SMTP exchange.")

    async def notify(self, body: str, subject: str | None = None) -> None:
        """Send one e-mail with ``subject`` and ``body`` (plain text) to every recipient."""
        message = EmailMessage()
        message["From"], message["To"] = self.sender, ", ".join(self.to)
        message["Subject"] = subject or "modelrelease"
        message.set_content(body)
        try:
            await asyncio.to_thread(self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            failure = NotificationError(
                f"e-mail to {', '.join(self.to)} through {self.host}:{self.port}: {exc}")
            if self._raise_on_failure:
                raise failure from exc
            self.logger.error(str(failure))

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.security is SmtpSecurity.STARTTLS:
                smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
            if self.username is not None:
                password = self.password.get_secret_value() if self.password else ""
                smtp.login(self.username, password)
            smtp.send_message(message)
