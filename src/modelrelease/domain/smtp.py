"""How notification e-mail reaches its SMTP server. Pure."""

from __future__ import annotations

from enum import StrEnum


class SmtpSecurity(StrEnum):
    """The ``modelrelease-email`` block's ``security`` (and ``--smtp-security``)."""

    STARTTLS = "starttls"  # upgraded to TLS before anything is sent; refused if it cannot
    NONE = "none"  # plain text: a relay on the same host or network only
