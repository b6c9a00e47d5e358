"""Smoke checks, pure: does a scoring response match the model's signature outputs?

The signature comes from the model's MLmodel file (``signature.outputs``, a JSON list);
the response is MLflow's ``{"predictions": ...}``. A mismatch names what was expected
and what came back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "long",
         "integer")
_FLOATS = ("float16", "float32", "float64", "float", "double")
_STRINGS = ("str", "string", "object")
_BOOLS = ("bool", "boolean")


@dataclass(frozen=True)
class SmokeResult:
    """Whether the response fits the signature, and why not."""

    passed: bool
    reason: str


def _kind_ok(value: Any, dtype: str) -> bool:
    if dtype in _INTS:
        return isinstance(value, int) and not isinstance(value, bool)
    if dtype in _FLOATS:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if dtype in _STRINGS:
        return isinstance(value, str)
    if dtype in _BOOLS:
        return isinstance(value, bool)
    return True  # a type we do not check (binary, datetime, ...)


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


def check_response(outputs: str | Sequence[Mapping[str, Any]] | None, rows: int,
                   response: Any) -> SmokeResult:
    """Check a ``/invocations`` response against the signature's outputs.

    Args:
        outputs: ``signature.outputs`` from MLmodel (JSON text or parsed), None if absent.
        rows: How many input rows were sent.
        response: The parsed JSON response.
    """
    if not isinstance(response, Mapping) or "predictions" not in response:
        return SmokeResult(False, f"response has no 'predictions' key: {str(response)[:200]}")
    predictions = response["predictions"]
    spec = json.loads(outputs) if isinstance(outputs, str) else list(outputs or [])
    if isinstance(predictions, Mapping):  # column-oriented output: {"col": [...]}
        columns = dict(predictions)
        lengths = {name: len(v) if isinstance(v, list) else 1 for name, v in columns.items()}
        if any(n != rows for n in lengths.values()):
            return SmokeResult(False, f"expected {rows} predictions per column, got {lengths}")
        rows_out: list[Any] = [{k: columns[k][i] for k in columns} for i in range(rows)]
    elif isinstance(predictions, list):
        rows_out = predictions
    else:
        return SmokeResult(False, f"'predictions' is a {type(predictions).__name__}, "
                                  "expected a list or an object of columns")
    if len(rows_out) != rows:
        return SmokeResult(False, f"expected {rows} predictions for {rows} input rows, "
                                  f"got {len(rows_out)}")
    if not spec:
        return SmokeResult(True, f"{rows} predictions (no output signature to check types)")
    if len(spec) == 1 and spec[0].get("type") == "tensor":
        tensor = spec[0].get("tensor-spec") or {}
        dtype = str(tensor.get("dtype", ""))
        shape = list(tensor.get("shape") or [-1])
        for index, row in enumerate(rows_out):
            if len(shape) == 1 and isinstance(row, list):
                return SmokeResult(False, f"prediction {index} is a list; the signature says "
                                          f"one {dtype} per row (shape {shape})")
            if len(shape) > 1 and not isinstance(row, list):
                return SmokeResult(False, f"prediction {index} is a scalar; the signature says "
                                          f"shape {shape}")
            if len(shape) > 1 and shape[1] != -1 and len(row) != shape[1]:
                return SmokeResult(False, f"prediction {index} has {len(row)} values; the "
                                          f"signature says {shape[1]} (shape {shape})")
            bad = [v for v in _flatten(row) if not _kind_ok(v, dtype)]
            if bad:
                return SmokeResult(False, f"prediction {index} holds {bad[0]!r}; the signature "
                                          f"says {dtype}")
        return SmokeResult(True, f"{rows} predictions of {dtype} shape {shape}")
    names = [str(col.get("name")) for col in spec if col.get("name")]
    for index, row in enumerate(rows_out):
        if len(spec) == 1 and not isinstance(row, Mapping):
            dtype = str(spec[0].get("type", ""))
            if not _kind_ok(row, dtype):
                return SmokeResult(False, f"prediction {index} is {row!r}; the signature says "
                                          f"{dtype}")
            continue
        if not isinstance(row, Mapping):
            return SmokeResult(False, f"prediction {index} is {row!r}; the signature names "
                                      f"columns {names}")
        missing = [n for n in names if n not in row]
        if missing:
            return SmokeResult(False, f"prediction {index} lacks columns {missing}")
        for col in spec:
            name = str(col.get("name"))
            if name in row and not _kind_ok(row[name], str(col.get("type", ""))):
                return SmokeResult(False, f"prediction {index} column {name} is "
                                          f"{row[name]!r}; the signature says {col.get('type')}")
    return SmokeResult(True, f"{rows} predictions with columns {names or 'as signed'}")
