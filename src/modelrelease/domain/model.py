"""Model versions and ``models:/`` URIs, as values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from modelrelease.errors import InvalidInput

_NAME = r"[^/@\s]+"
_URI = re.compile(rf"^models:/(?P<name>{_NAME})(?:/(?P<ref>[^/@\s]+)|@(?P<alias>[\w-]+))$")
STAGES = ("None", "Staging", "Production", "Archived")


@dataclass(frozen=True)
class ModelUri:
    """``models:/NAME/VERSION``, ``models:/NAME/STAGE`` or ``models:/NAME@ALIAS``."""

    name: str
    version: str | None = None
    alias: str | None = None
    stage: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelUri:
        """Parse ``uri``; raise ``InvalidInput`` saying which forms are accepted."""
        match = _URI.match(uri.strip())
        if not match:
            raise InvalidInput(
                f"parse model URI {uri!r}: expected models:/NAME/VERSION, models:/NAME@ALIAS "
                "or models:/NAME/STAGE"
            )
        name, ref, alias = match.group("name"), match.group("ref"), match.group("alias")
        if alias:
            return cls(name=name, alias=alias)
        assert ref is not None
        if ref.isascii() and ref.isdigit():
            return cls(name=name, version=ref)
        for stage in STAGES:
            if ref.lower() == stage.lower():
                return cls(name=name, stage=stage)
        raise InvalidInput(
            f"parse model URI {uri!r}: {ref!r} is neither a version number nor a stage "
            f"({', '.join(STAGES)}); use models:/{name}@{ref} for an alias"
        )

    def __str__(self) -> str:
        if self.alias:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version or self.stage}"


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version, as resolved from MLflow."""

    name: str
    version: str
    source: str
    run_id: str | None
    created: datetime
    aliases: tuple[str, ...] = ()
    stage: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def known(cls, name: str, version: str) -> ModelVersion:
        """A version known by name and number alone (enough to tag it), without asking MLflow."""
        return cls(name=name, version=version, source="", run_id=None,
                   created=cls.created_from_ms(None))

    @property
    def uri(self) -> str:
        """The pinned ``models:/NAME/VERSION`` URI."""
        return f"models:/{self.name}/{self.version}"

    @staticmethod
    def created_from_ms(timestamp_ms: int | None) -> datetime:
        """A UTC datetime from MLflow's millisecond timestamps (epoch when unknown)."""
        return datetime.fromtimestamp((timestamp_ms or 0) / 1000, tz=UTC)
