"""The exception tree and its retry defaults."""

from __future__ import annotations

import inspect

import pytest

from modelrelease import errors
from modelrelease.errors import (
    ImageNotFound,
    InvalidInput,
    PipelineError,
    RegistryAuthError,
    RegistryError,
    UnsafeModelDir,
)

ALL_ERRORS = sorted(
    (obj for _, obj in inspect.getmembers(errors, inspect.isclass)
     if issubclass(obj, Exception) and obj.__module__ == errors.__name__),
    key=lambda cls: cls.__name__,
)


def test_the_tree_is_complete() -> None:
    assert {cls.__name__ for cls in ALL_ERRORS} == {
        "PipelineError", "InvalidInput", "UnsafeModelDir", "ModelNotFound", "ArtifactsMissing",
        "MlflowError", "RegistryError", "ImageNotFound", "RegistryAuthError", "BuildError",
        "KubeApiError", "RolloutTimeout", "ReleaseInProgress", "StackError",
        "PrefectError", "DrillFailed",
    }


@pytest.mark.parametrize("cls", [pytest.param(c, id=c.__name__) for c in ALL_ERRORS])
def test_every_error_is_a_pipeline_error(cls: type[PipelineError]) -> None:
    assert issubclass(cls, PipelineError)
    error = cls("verb kind name: cause")
    assert isinstance(error, Exception)
    assert error.message == "verb kind name: cause"
    assert str(error) == "verb kind name: cause"
    assert cls("m", retriable=True).retriable is True
    assert cls("m", retriable=False).retriable is False


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        pytest.param(UnsafeModelDir, InvalidInput, id="unsafe-is-invalid-input"),
        pytest.param(ImageNotFound, RegistryError, id="not-found-is-registry"),
        pytest.param(RegistryAuthError, RegistryError, id="auth-is-registry"),
    ],
)
def test_subclasses(child: type[PipelineError], parent: type[PipelineError]) -> None:
    assert issubclass(child, parent)


@pytest.mark.parametrize(
    "cls",
    [pytest.param(c, id=c.__name__) for c in ALL_ERRORS if not issubclass(c, RegistryError)],
)
def test_not_retriable_by_default(cls: type[PipelineError]) -> None:
    assert cls("m").retriable is False


@pytest.mark.parametrize(
    ("status", "retriable"),
    [
        pytest.param(0, True, id="no-response"),
        pytest.param(429, True, id="too-many-requests"),
        pytest.param(500, True, id="500"),
        pytest.param(502, True, id="502"),
        pytest.param(503, True, id="503"),
        pytest.param(599, True, id="599"),
        pytest.param(400, False, id="400"),
        pytest.param(401, False, id="401"),
        pytest.param(403, False, id="403"),
        pytest.param(404, False, id="404"),
        pytest.param(409, False, id="409"),
        pytest.param(499, False, id="499"),
    ],
)
@pytest.mark.parametrize(
    "cls",
    [pytest.param(RegistryError, id="RegistryError"),
     pytest.param(ImageNotFound, id="ImageNotFound"),
     pytest.param(RegistryAuthError, id="RegistryAuthError")],
)
def test_registry_error_retriable_default(
    cls: type[RegistryError], status: int, retriable: bool
) -> None:
    error = cls("push blob x: failed", status=status, code="CODE")
    assert error.retriable is retriable
    assert (error.status, error.code) == (status, "CODE")


@pytest.mark.parametrize(
    ("status", "override"),
    [
        pytest.param(503, False, id="5xx-forced-not-retriable"),
        pytest.param(404, True, id="404-forced-retriable"),
        pytest.param(0, False, id="no-response-forced-not-retriable"),
    ],
)
def test_registry_error_explicit_override(status: int, override: bool) -> None:
    assert RegistryError("m", status=status, retriable=override).retriable is override


def test_registry_error_defaults() -> None:
    error = RegistryError("m")
    assert (error.status, error.code, error.retriable) == (0, "", True)
