"""``ReleaseRequest``: the parameters of one release (the Prefect flow's form)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from modelrelease.spec.endpoint import CanaryPolicy, ModelEndpoint, ModelRef
from modelrelease.spec.values import Alias, SpecModel, invalid, valid_endpoint_name

# --- flow parameters --------------------------------------------------------------------------


class EndpointRequest(SpecModel):
    """A flow's parameters that name one endpoint.

    ``endpoint`` is an endpoint name (``deployments/endpoints/NAME.yaml``) or a path to a
    ModelEndpoint file.
    """

    endpoint: Annotated[str, Field(min_length=1, max_length=253, title="Endpoint",
                                   examples=["iris"])]
    """Endpoint name, or path to its ModelEndpoint YAML file."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if _is_path(value):
            return value
        return valid_endpoint_name(value)

    def endpoint_file(self, endpoints_dir: Path) -> Path:
        """The file to load: ``endpoint`` itself if it is a path, else NAME.yaml in the dir."""
        if _is_path(self.endpoint):
            return Path(self.endpoint)
        return endpoints_dir / f"{self.endpoint}.yaml"


class ReleaseRequest(EndpointRequest):
    """Parameters of one release (the Prefect flow's form).

    ``version`` or ``alias`` overrides the file's model selector and ``canary`` its canary
    policy.
    """

    version: Annotated[int, Field(ge=1)] | None = Field(default=None, title="Model version")
    """Release this model version instead of the file's selector."""
    alias: Alias | None = Field(default=None, title="Model alias")
    """Release the version with this alias instead of the file's selector."""
    canary: CanaryPolicy | None = Field(default=None, title="Canary policy")
    """Use this canary policy instead of the file's."""
    dry_run: bool = Field(default=False, title="Dry run")
    """Plan and render, change nothing."""

    @model_validator(mode="after")
    def _one_override(self) -> ReleaseRequest:
        if self.version is not None and self.alias is not None:
            raise invalid("override", "sets version and alias: keep one of them", at=("alias",))
        return self

    def applied_to(self, endpoint: ModelEndpoint) -> ModelEndpoint:
        """``endpoint`` with this request's overrides (model selector, canary policy)."""
        spec = endpoint.spec
        if self.version is not None or self.alias is not None:
            model = ModelRef(name=spec.model.name, version=self.version, alias=self.alias)
            spec = spec.model_copy(update={"model": model})
        if self.canary is not None:
            spec = spec.model_copy(update={"canary": self.canary})
        return endpoint.model_copy(update={"spec": spec})


class RollbackRequest(EndpointRequest):
    """Parameters of one rollback (the ``rollback`` deployment's form)."""

    to_version: Annotated[int, Field(ge=1)] | None = Field(
        default=None, title="Roll back to version",
        description="a version this endpoint promoted before; default: the last one")
    """Go back to this version instead of the last verified release."""
    by: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None, title="Who", description="recorded in the status and MLflow tags")
    """Who rolls back (default: the flow run)."""


def _is_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.endswith((".yaml", ".yml"))
