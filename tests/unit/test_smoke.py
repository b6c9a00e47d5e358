"""domain.smoke: responses against signature outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelrelease.domain.smoke import check_response

INT_TENSOR = json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}])
FLOAT_MATRIX = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}]
COLUMNS = [{"type": "double", "name": "score"}, {"type": "string", "name": "label"}]
ONE_COLUMN = [{"type": "long"}]


@pytest.mark.parametrize(
    ("outputs", "rows", "response", "passed", "text"),
    [
        pytest.param(INT_TENSOR, 3, {"predictions": [0, 1, 2]}, True, "3 predictions of int64",
                     id="iris-ok"),
        pytest.param(INT_TENSOR, 3, {"predictions": [0, 1]}, False, "expected 3 predictions",
                     id="too-few"),
        pytest.param(INT_TENSOR, 2, {"predictions": [0.5, 1]}, False, "holds 0.5",
                     id="float-for-int"),
        pytest.param(INT_TENSOR, 2, {"predictions": [True, 1]}, False, "holds True",
                     id="bool-is-not-int"),
        pytest.param(INT_TENSOR, 1, {"predictions": [[0, 1]]}, False, "is a list",
                     id="wrong-shape-nested"),
        pytest.param(FLOAT_MATRIX, 1, {"predictions": [[0.1, 0.2, 0.7]]}, True, "float64",
                     id="matrix-ok"),
        pytest.param(FLOAT_MATRIX, 1, {"predictions": [0.1]}, False, "is a scalar",
                     id="matrix-scalar"),
        pytest.param(FLOAT_MATRIX, 1, {"predictions": [[0.1, 0.9]]}, False, "has 2 values",
                     id="matrix-width"),
        pytest.param(FLOAT_MATRIX, 1, {"predictions": [[0.1, "x", 0.2]]}, False, "holds 'x'",
                     id="matrix-type"),
        pytest.param(COLUMNS, 2, {"predictions": [{"score": 0.1, "label": "a"},
                                                  {"score": 1, "label": "b"}]}, True,
                     "columns ['score', 'label']", id="columns-ok"),
        pytest.param(COLUMNS, 1, {"predictions": [{"score": 0.1}]}, False, "lacks columns",
                     id="columns-missing"),
        pytest.param(COLUMNS, 1, {"predictions": [{"score": "high", "label": "a"}]}, False,
                     "column score", id="columns-type"),
        pytest.param(COLUMNS, 1, {"predictions": [3]}, False, "names columns",
                     id="columns-scalar"),
        pytest.param(COLUMNS, 2, {"predictions": {"score": [0.1, 0.2], "label": ["a", "b"]}},
                     True, "columns", id="column-oriented"),
        pytest.param(COLUMNS, 2, {"predictions": {"score": [0.1], "label": ["a", "b"]}},
                     False, "per column", id="column-oriented-short"),
        pytest.param(ONE_COLUMN, 2, {"predictions": [1, 2]}, True, "as signed",
                     id="unnamed-column"),
        pytest.param(ONE_COLUMN, 1, {"predictions": ["1"]}, False, "says long",
                     id="unnamed-column-type"),
        pytest.param([{"type": "binary"}], 1, {"predictions": [b"x".hex()]}, True, "",
                     id="unchecked-type"),
        pytest.param([{"type": "boolean", "name": "ok"}], 1, {"predictions": [{"ok": True}]},
                     True, "", id="bool-column"),
        pytest.param(None, 2, {"predictions": [1, 2]}, True, "no output signature",
                     id="unsigned"),
        pytest.param(INT_TENSOR, 1, {"result": [1]}, False, "no 'predictions'", id="no-key"),
        pytest.param(INT_TENSOR, 1, [1], False, "no 'predictions'", id="not-an-object"),
        pytest.param(INT_TENSOR, 1, {"predictions": 5}, False, "is a int", id="scalar"),
        pytest.param([{"type": "string", "name": "s"}], 1, {"predictions": {"s": "x"}}, True,
                     "", id="column-oriented-scalar"),
    ],
)
def test_check_response(outputs: Any, rows: int, response: Any, passed: bool, text: str) -> None:
    result = check_response(outputs, rows, response)
    assert result.passed is passed
    assert text in result.reason
