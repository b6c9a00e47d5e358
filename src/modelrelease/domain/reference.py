"""Image references: ``[registry/]repository[:tag][@sha256:hex]``, parsed and validated."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from modelrelease.errors import InvalidInput

DEFAULT_REGISTRY = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (with or without a port) names this machine's loopback."""
    if host.startswith("["):
        bare = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        bare = host.split(":", 1)[0]
    else:
        bare = host
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a valid OCI tag."""
    return bool(_TAG.match(tag))


def valid_digest(digest: str) -> bool:
    """Whether ``digest`` is a ``sha256:`` digest with 64 lowercase hex digits."""
    return bool(_DIGEST.match(digest))


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. ``pinned`` ones carry a digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        """Parse ``ref``; raise ``InvalidInput`` naming the bad part."""
        text = ref.strip()
        if not text:
            raise InvalidInput("parse image reference: empty (expected REGISTRY/REPO[:TAG])")
        digest: str | None = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not valid_digest(digest):
                raise InvalidInput(
                    f"parse image reference {ref!r}: digest {digest!r} is not sha256:<64 hex>"
                )
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, remainder = first, rest
        else:
            registry, remainder = DEFAULT_REGISTRY, text
        tag: str | None = None
        last = remainder.rsplit("/", 1)[-1]
        if ":" in last:
            remainder, tag = remainder.rsplit(":", 1)
            if not valid_tag(tag):
                raise InvalidInput(f"parse image reference {ref!r}: invalid tag {tag!r}")
        if not _REPOSITORY.match(remainder):
            raise InvalidInput(
                f"parse image reference {ref!r}: invalid repository {remainder!r} "
                "(lowercase letters, digits, and . _ - separators, / between components)"
            )
        if registry == DEFAULT_REGISTRY and "/" not in remainder:
            remainder = f"library/{remainder}"
        return cls(registry=registry, repository=remainder, tag=tag, digest=digest)

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag (or latest)."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> ImageRef:
        """This reference pinned to ``digest`` (the tag is kept for readability)."""
        return ImageRef(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str | None) -> ImageRef:
        """This repository at ``tag``, unpinned."""
        return ImageRef(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
