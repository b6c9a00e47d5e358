"""The generated load's slice mix: the spec's ``slices``, the column setter, the request shapes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelrelease.domain.sample_set import Batch, from_payload, with_column
from modelrelease.domain.slice_mix import SliceRequest, slice_requests
from modelrelease.spec import SliceCheck

EXAMPLE = {"dataframe_split": {"columns": ["a", "n", "flag", "text", "none"],
                               "data": [[1.5, 2, True, "x", None], [2.5, 3, False, "y", None]]}}


# ------------------------------------------------------------------------------ the spec

@pytest.mark.parametrize(
    ("fields", "words"),
    [
        pytest.param({"mix": {"a": 1}}, "set exactly one of header", id="no-key"),
        pytest.param({"header": "X-T", "column": "c", "mix": {"a": 1}},
                     "set exactly one of header", id="both-keys"),
        pytest.param({"header": "X-T", "mix": {}}, "at least 1 item", id="empty-mix"),
        pytest.param({"header": "X-T", "mix": {"a": 0}}, "greater than 0", id="zero-weight"),
        pytest.param({"header": "X T", "mix": {"a": 1}}, "should match pattern",
                     id="bad-header"),
        pytest.param({"header": "X-T", "mix": {f"v{i}": 1 for i in range(11)}},
                     "names 11 slice values but maxSlices is 10", id="mix-beyond-max"),
        pytest.param({"header": "X-T", "mix": {"a": 1}, "minRequests": 1},
                     "greater than or equal to 2", id="min-requests"),
    ],
)
def test_slice_check_refuses(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        SliceCheck.model_validate(fields)


def test_slice_check_reads_camel_case_with_defaults() -> None:
    check = SliceCheck.model_validate({"column": "locale", "mix": {"de": 1, "en": 3}})
    assert (check.column, check.header, check.max_slices, check.min_requests) == (
        "locale", None, 10, 50)
    assert SliceCheck.model_validate({"header": "X-Tenant", "mix": {"a": 1}, "maxSlices": 3,
                                      "minRequests": 20}).max_slices == 3


# ---------------------------------------------------------------------------- with_column

@pytest.mark.parametrize(
    ("column", "value", "cells"),
    [
        pytest.param("a", "7.7", [7.7, 7.7], id="float"),
        pytest.param("n", "5", [5, 5], id="int"),
        pytest.param("flag", "TRUE", [True, True], id="bool"),
        pytest.param("text", "de", ["de", "de"], id="text"),
        pytest.param("none", "z", ["z", "z"], id="all-null-is-text"),
    ],
)
def test_with_column_sets_every_row_typed_as_the_column(column: str, value: str,
                                                        cells: list[Any]) -> None:
    batch = with_column(from_payload(EXAMPLE), column, value)
    assert batch.columns is not None
    index = batch.columns.index(column)
    assert [row[index] for row in batch.rows] == cells
    untouched = [i for i in range(len(batch.columns)) if i != index]
    original = from_payload(EXAMPLE)
    assert [[row[i] for i in untouched] for row in batch.rows] == [
        [row[i] for i in untouched] for row in original.rows]


@pytest.mark.parametrize(
    ("batch", "column", "value", "words"),
    [
        pytest.param(from_payload(EXAMPLE), "zz", "1", "no column .zz. \\(its columns: a, n",
                     id="missing"),
        pytest.param(from_payload(EXAMPLE), "a", "fast", "slice value 'fast' is not a float",
                     id="not-a-float"),
        pytest.param(from_payload(EXAMPLE), "n", "1.5", "is not a int", id="not-an-int"),
        pytest.param(from_payload(EXAMPLE), "flag", "yes", "is not a bool", id="not-a-bool"),
        pytest.param(Batch(((1, 2),), None, "inputs"), "a", "1", "no named columns",
                     id="tensor-rows"),
    ],
)
def test_with_column_refuses(batch: Batch, column: str, value: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        with_column(batch, column, value)


# ------------------------------------------------------------------------- slice_requests

def test_header_slices_set_the_header_and_keep_the_body() -> None:
    check = SliceCheck(header="X-Tenant", mix={"a": 1.0, "b": 3.0})
    assert slice_requests(check, EXAMPLE) == (
        SliceRequest("a", 1.0, None, {"X-Tenant": "a"}),
        SliceRequest("b", 3.0, None, {"X-Tenant": "b"}))
    assert slice_requests(check, None)[0].headers == {"X-Tenant": "a"}  # no example needed


def test_column_slices_set_the_column_in_the_example() -> None:
    check = SliceCheck(column="a", mix={"5.1": 9.0, "7.7": 1.0})
    first, second = slice_requests(check, EXAMPLE)
    assert (first.value, first.weight, second.value, second.weight) == ("5.1", 9.0, "7.7", 1.0)
    assert first.headers == {} and second.payload is not None
    assert [row[0] for row in second.payload["dataframe_split"]["data"]] == [7.7, 7.7]


def test_column_slices_need_an_example_that_has_the_column() -> None:
    with pytest.raises(ValueError, match="need the version's input example"):
        slice_requests(SliceCheck(column="a", mix={"1": 1.0}), None)
    with pytest.raises(ValueError, match="no column 'b'"):
        slice_requests(SliceCheck(column="b", mix={"1": 1.0}), EXAMPLE)
