"""Which of a model's Python requirements its serving base does not already satisfy."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelrelease.errors import InvalidInput

_COMMENT = re.compile(r"(?:^|\s)#")


def parse_requirements(text: str, source: str = "requirements.txt") -> list[Requirement]:
    """Parse a requirements file's lines (comments, blanks and pip options skipped).

    Raises:
        InvalidInput: a line is not a valid requirement (the line is named).
    """
    out: list[Requirement] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.split(raw, maxsplit=1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            out.append(Requirement(line))
        except InvalidRequirement as exc:
            raise InvalidInput(f"read {source} line {number}: {line!r} is not a requirement "
                               f"({exc})") from exc
    return out


def _satisfied(req: Requirement, provided: Mapping[str, str]) -> bool:
    have = provided.get(canonicalize_name(req.name))
    if have is None:
        return False
    try:
        return req.specifier.contains(Version(have), prereleases=True)
    except InvalidVersion:
        return False


def missing_requirements(
    requirements: Iterable[Requirement],
    provided: Mapping[str, str],
    environment: Mapping[str, str] | None = None,
) -> list[str]:
    """The requirements ``provided`` (name -> version) does not satisfy, sorted, as text.

    Requirements whose environment marker is false for ``environment`` are dropped.
    """
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(environment or {})
    normalised: dict[str, str] = {str(canonicalize_name(k)): v for k, v in provided.items()}
    missing = {
        str(req) for req in requirements
        if (req.marker is None or req.marker.evaluate(env)) and not _satisfied(req, normalised)
    }
    return sorted(missing, key=str.lower)


@dataclass(frozen=True)
class DependencySet:
    """What a dependency layer holds: requirements for one interpreter and platform."""

    requirements: tuple[str, ...]
    python_version: str
    platform: str

    @property
    def key(self) -> str:
        """A cache key: the same set on the same platform shares one layer."""
        body = json.dumps([self.requirements, self.python_version, self.platform])
        return hashlib.sha256(body.encode()).hexdigest()[:32]
