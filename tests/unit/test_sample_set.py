"""domain.sample_set: input example and sample set, parsed and merged into one batch."""

from __future__ import annotations

from typing import Any

import pytest

from modelrelease.domain.sample_set import (
    Batch,
    cell_text,
    column_value,
    from_payload,
    merge,
    parse_samples,
)

COLUMNS = ("sepal_length", "sepal_width")
EXAMPLE = {"dataframe_split": {"columns": list(COLUMNS), "data": [[5.1, 3.5], [4.9, 3.0]]}}


@pytest.mark.parametrize(("payload", "batch"), [
    pytest.param(EXAMPLE, Batch(((5.1, 3.5), (4.9, 3.0)), COLUMNS), id="split"),
    pytest.param({"dataframe_split": {"columns": ["a"], "data": [1, 2]}},
                 Batch(((1,), (2,)), ("a",)), id="split-scalar-rows"),
    pytest.param({"dataframe_records": [{"a": 1}, {"a": 2, "b": 3}]},
                 Batch(((1, None), (2, 3)), ("a", "b")), id="records"),
    pytest.param({"inputs": [[1, 2], [3, 4]]}, Batch(([1, 2], [3, 4]), None, "inputs"),
                 id="inputs"),
    pytest.param({"instances": [1], "params": {"k": 1}},
                 Batch((1,), None, "instances", {"k": 1}), id="instances-with-params"),
])
def test_from_payload(payload: Any, batch: Batch) -> None:
    assert from_payload(payload) == batch


@pytest.mark.parametrize(("payload", "words"), [
    pytest.param([1, 2], "expected a JSON object, got list", id="not-an-object"),
    pytest.param({"inputs": {"x": [1]}}, "no rows in a payload with keys", id="named-tensors"),
    pytest.param({"dataframe_split": {"data": [[1]]}}, "needs 'columns' and 'data'",
                 id="split-without-columns"),
    pytest.param({"dataframe_split": [[1]]}, "needs 'columns' and 'data'", id="split-list"),
    pytest.param({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}},
                 "every row must hold 1 values", id="split-ragged"),
    pytest.param({"dataframe_records": [1]}, "records must all be objects", id="records-bad"),
])
def test_from_payload_refuses(payload: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        from_payload(payload)


@pytest.mark.parametrize(("text", "name", "batch"), [
    pytest.param("sepal_width,sepal_length\n3.1,5\n,4.4\n", "s.csv",
                 Batch(((3.1, 5), (None, 4.4)), ("sepal_width", "sepal_length")), id="csv"),
    pytest.param("label\nsetosa\n", "S.CSV", Batch((("setosa",),), ("label",)), id="csv-text"),
    pytest.param('[{"a": 1}]', "s.json", Batch(((1,),), ("a",)), id="records"),
    pytest.param("[[1, 2], 3]", "s.json", Batch(((1, 2), 3), None, "inputs"), id="rows"),
    pytest.param('{"columns": ["a"], "data": [[1]]}', "s.json", Batch(((1,),), ("a",)),
                 id="pandas-split"),
    pytest.param('{"inputs": [[1]]}', "s.json", Batch(([1],), None, "inputs"), id="payload"),
])
def test_parse_samples(text: str, name: str, batch: Batch) -> None:
    assert parse_samples(text, name) == batch


@pytest.mark.parametrize(("text", "name", "words"), [
    pytest.param("a,b\n", "s.csv", "a header line and at least one row", id="csv-header-only"),
    pytest.param("a,b\n1\n", "s.csv", "s.csv line 2: 1 values for 2 columns", id="csv-ragged"),
    pytest.param("{", "s.json", "s.json: not JSON", id="not-json"),
    pytest.param("[]", "s.json", "an empty list holds no rows", id="empty"),
    pytest.param('{"rows": []}', "s.json", "no rows in a payload", id="unknown-object"),
])
def test_parse_samples_refuses(text: str, name: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_samples(text, name)


SAMPLES = Batch(((3.0, 6.0, "x"), (3.2, 6.1, "y")), ("sepal_width", "sepal_length", "extra"))
EXAMPLE_BATCH = from_payload({**EXAMPLE, "params": {"k": 1}})
TENSOR = Batch(([1, 2],), None, "inputs")


@pytest.mark.parametrize(("example", "samples", "most", "batch"), [
    pytest.param(None, None, 10, None, id="nothing"),
    pytest.param(EXAMPLE_BATCH, None, 1, Batch(((5.1, 3.5),), COLUMNS, params={"k": 1}),
                 id="example-capped"),
    pytest.param(None, SAMPLES, 10, SAMPLES, id="samples-only"),
    pytest.param(EXAMPLE_BATCH, SAMPLES, 10,
                 Batch(((5.1, 3.5), (4.9, 3.0), (6.0, 3.0), (6.1, 3.2)), COLUMNS,
                       params={"k": 1}), id="columns-reordered-extra-dropped"),
    pytest.param(EXAMPLE_BATCH, SAMPLES, 3,
                 Batch(((5.1, 3.5), (4.9, 3.0), (6.0, 3.0)), COLUMNS, params={"k": 1}),
                 id="capped-example-first"),
    pytest.param(EXAMPLE_BATCH, Batch(((1, 2),), None, "inputs"), 10,
                 Batch(((5.1, 3.5), (4.9, 3.0), (1, 2)), COLUMNS, params={"k": 1}),
                 id="rows-in-example-order"),
    pytest.param(TENSOR, Batch(([3, 4],), None, "inputs"), 10,
                 Batch(([1, 2], [3, 4]), None, "inputs"), id="tensor-rows"),
])
def test_merge(example: Batch | None, samples: Batch | None, most: int,
               batch: Batch | None) -> None:
    assert merge(example, samples, most) == batch


@pytest.mark.parametrize(("example", "samples", "words"), [
    pytest.param(TENSOR, SAMPLES, "named columns but the input example is tensor rows",
                 id="columns-into-tensor"),
    pytest.param(EXAMPLE_BATCH, Batch(((1, 2, 3),), None, "inputs"),
                 "sample rows must hold 2 values", id="row-too-wide"),
    pytest.param(EXAMPLE_BATCH, Batch((1,), None, "inputs"), "sample rows must hold 2 values",
                 id="scalar-row"),
    pytest.param(EXAMPLE_BATCH, Batch(((1,),), ("petal_width",)),
                 r"lacks columns \['sepal_length', 'sepal_width'\]", id="missing-columns"),
])
def test_merge_refuses(example: Batch, samples: Batch, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        merge(example, samples, 10)


def test_payload() -> None:
    assert merge(EXAMPLE_BATCH, None, 10).payload() == {  # type: ignore[union-attr]
        **EXAMPLE, "params": {"k": 1}}
    assert TENSOR.payload() == {"inputs": [[1, 2]]}


@pytest.mark.parametrize(("cell", "text"), [
    pytest.param(True, "true", id="bool"), pytest.param(7, "7", id="int"),
    pytest.param(7.0, "7", id="integral-float"), pytest.param(7.7, "7.7", id="float"),
    pytest.param("de", "de", id="text"), pytest.param(None, None, id="null"),
    pytest.param([1], None, id="not-a-scalar"),
])
def test_cell_text(cell: Any, text: str | None) -> None:
    assert cell_text(cell) == text


@pytest.mark.parametrize(("body", "value"), [
    pytest.param(b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, "x"], '
                 b'[1.5, "y"]]}}', "1.5", id="split-one-value"),
    pytest.param(b'{"dataframe_records": [{"a": 2, "b": 1}]}', "2", id="records"),
    pytest.param(b'{"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}}', None,
                 id="mixed-batch"),
    pytest.param(b'{"dataframe_split": {"columns": ["b"], "data": [[1]]}}', None,
                 id="no-such-column"),
    pytest.param(b'{"inputs": [[1, 2]]}', None, id="tensor-rows"),
    pytest.param(b'{"dataframe_split": {"columns": ["a"], "data": []}}', None, id="no-rows"),
    pytest.param(b"a,b\n1,2", None, id="csv"),
    pytest.param(b"\xff", None, id="not-text"),
])
def test_column_value(body: bytes, value: str | None) -> None:
    assert column_value(body, "a") == value
