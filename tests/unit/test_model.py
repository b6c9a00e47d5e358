"""models:/ URIs and model versions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelrelease.domain.model import STAGES, ModelUri, ModelVersion
from modelrelease.errors import InvalidInput


@pytest.mark.parametrize(
    ("uri", "expected", "printed"),
    [
        pytest.param("models:/iris/3", ModelUri("iris", version="3"), "models:/iris/3",
                     id="version"),
        pytest.param("models:/iris/0012", ModelUri("iris", version="0012"), "models:/iris/0012",
                     id="version-leading-zeros-kept"),
        pytest.param("models:/iris@champion", ModelUri("iris", alias="champion"),
                     "models:/iris@champion", id="alias"),
        pytest.param("models:/iris@blue-green_2", ModelUri("iris", alias="blue-green_2"),
                     "models:/iris@blue-green_2", id="alias-dash-underscore"),
        pytest.param("models:/iris/Production", ModelUri("iris", stage="Production"),
                     "models:/iris/Production", id="stage"),
        pytest.param("models:/iris/staging", ModelUri("iris", stage="Staging"),
                     "models:/iris/Staging", id="stage-lowercase-canonicalised"),
        pytest.param("models:/iris/ARCHIVED", ModelUri("iris", stage="Archived"),
                     "models:/iris/Archived", id="stage-uppercase"),
        pytest.param("models:/iris/none", ModelUri("iris", stage="None"), "models:/iris/None",
                     id="stage-none"),
        pytest.param("models:/my.model-v2_x/1", ModelUri("my.model-v2_x", version="1"),
                     "models:/my.model-v2_x/1", id="name-with-punctuation"),
        pytest.param("  models:/iris/3\n", ModelUri("iris", version="3"), "models:/iris/3",
                     id="whitespace-stripped"),
    ],
)
def test_parse(uri: str, expected: ModelUri, printed: str) -> None:
    parsed = ModelUri.parse(uri)
    assert parsed == expected
    assert str(parsed) == printed
    assert ModelUri.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        pytest.param("", "expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/STAGE",
                     id="empty"),
        pytest.param("iris/3", "expected models:/NAME/VERSION", id="no-scheme"),
        pytest.param("models://iris/3", "expected models:/NAME/VERSION", id="double-slash"),
        pytest.param("models:/iris", "expected models:/NAME/VERSION", id="name-only"),
        pytest.param("models:/iris/", "expected models:/NAME/VERSION", id="trailing-slash"),
        pytest.param("models:/iris/3/extra", "expected models:/NAME/VERSION", id="too-deep"),
        pytest.param("models:/iris@", "expected models:/NAME/VERSION", id="empty-alias"),
        pytest.param("models:/iris@a.b", "expected models:/NAME/VERSION", id="alias-with-dot"),
        pytest.param("models:/iris/3@a", "expected models:/NAME/VERSION", id="version-and-alias"),
        pytest.param("models:/my iris/3", "expected models:/NAME/VERSION", id="space-in-name"),
        pytest.param("runs:/abc/model", "expected models:/NAME/VERSION", id="runs-uri"),
        pytest.param("models:/iris/champion",
                     "'champion' is neither a version number nor a stage (None, Staging, "
                     "Production, Archived); use models:/iris@champion for an alias",
                     id="alias-written-as-path"),
        pytest.param("models:/iris/-1", "'-1' is neither a version number nor a stage",
                     id="negative-version"),
        pytest.param("models:/iris/1.0", "'1.0' is neither", id="dotted-version"),
    ],
)
def test_parse_invalid(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        ModelUri.parse(uri)
    assert message in str(info.value)
    assert str(info.value).startswith(f"parse model URI {uri!r}")


def test_parse_rejects_superscript_digit() -> None:
    with pytest.raises(InvalidInput):
        ModelUri.parse("models:/iris/²")


def test_stages() -> None:
    assert STAGES == ("None", "Staging", "Production", "Archived")


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [
        pytest.param(None, datetime(1970, 1, 1, tzinfo=UTC), id="unknown-is-epoch"),
        pytest.param(0, datetime(1970, 1, 1, tzinfo=UTC), id="zero"),
        pytest.param(1_700_000_000_123, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
                     id="milliseconds-kept"),
        pytest.param(86_400_000, datetime(1970, 1, 2, tzinfo=UTC), id="one-day"),
    ],
)
def test_created_from_ms(timestamp_ms: int | None, expected: datetime) -> None:
    created = ModelVersion.created_from_ms(timestamp_ms)
    assert created == expected
    assert created.tzinfo is UTC


def test_model_version_uri_pins_the_version() -> None:
    version = ModelVersion(
        name="iris", version="7", source="s3://b/k", run_id=None,
        created=ModelVersion.created_from_ms(None), aliases=("champion",), stage="Production",
    )
    assert version.uri == "models:/iris/7"
    assert ModelUri.parse(version.uri) == ModelUri("iris", version="7")
    assert version.tags == {}
