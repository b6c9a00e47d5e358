"""The inputs of the output-agreement check, pure: input example plus sample set, one batch.

The input example is MLflow's serving payload (``serving_input_example.json``); the sample
set is a file logged in the version's run, JSON or CSV:

* JSON: a serving payload (``{"dataframe_split": ...}``, ``{"dataframe_records": [...]}``,
  ``{"inputs": [...]}``, ``{"instances": [...]}``), a pandas split (``{"columns": [...],
  "data": [[...]]}``), a list of records (``[{"a": 1, ...}]``) or a list of rows (``[[1, 2]]``,
  in the input example's column order);
* CSV: a header line with the column names, then one row per line (numbers parsed as numbers,
  empty cells as null).

:func:`merge` puts both in one batch (the example's rows first, the sample set's columns
reordered to the example's), capped at ``max_rows``; :meth:`Batch.payload` is the request.
Errors are ``ValueError`` with a message that names the problem.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Batch", "cell_text", "column_value", "from_payload", "merge", "parse_samples",
           "with_column"]

_LISTS = ("inputs", "instances")


@dataclass(frozen=True)
class Batch:
    """Rows to score: named columns (a data frame) or, with ``columns`` None, tensor rows."""

    rows: tuple[Any, ...]
    columns: tuple[str, ...] | None = None
    key: str = "dataframe_split"
    params: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The ``/invocations`` request body."""
        body: dict[str, Any] = (
            {"dataframe_split": {"columns": list(self.columns),
                                 "data": [list(row) for row in self.rows]}}
            if self.columns is not None else {self.key: list(self.rows)})
        if self.params:
            body["params"] = dict(self.params)
        return body


def _records(records: Sequence[Any]) -> Batch:
    if not all(isinstance(r, Mapping) for r in records):
        raise ValueError("records must all be objects of column: value")
    columns = tuple(dict.fromkeys(str(k) for r in records for k in r))
    return Batch(tuple(tuple(r.get(c) for c in columns) for r in records), columns)


def _split(body: Any) -> Batch:
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list) or not \
            isinstance(body.get("columns"), list):
        raise ValueError("a split data frame needs 'columns' and 'data' lists")
    columns = tuple(str(c) for c in body["columns"])
    rows = tuple(tuple(r) if isinstance(r, list) else (r,) for r in body["data"])
    if any(len(r) != len(columns) for r in rows):
        raise ValueError(f"every row must hold {len(columns)} values, one per column")
    return Batch(rows, columns)


def from_payload(payload: Any) -> Batch:
    """A serving payload (the input example's format) as a batch.

    Raises:
        ValueError: not a payload with rows (e.g. a dict of named tensors).
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    params = payload.get("params") or {}
    if "dataframe_split" in payload:
        batch = _split(payload["dataframe_split"])
    elif "dataframe_records" in payload and isinstance(payload["dataframe_records"], list):
        batch = _records(payload["dataframe_records"])
    else:
        key = next((k for k in _LISTS if isinstance(payload.get(k), list)), None)
        if key is None:
            raise ValueError(f"no rows in a payload with keys {sorted(payload)}: use "
                             "dataframe_split, dataframe_records, or a list under inputs "
                             "or instances")
        batch = Batch(tuple(payload[key]), None, key)
    return Batch(batch.rows, batch.columns, batch.key, params)


def _cell(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_samples(text: str, name: str) -> Batch:
    """A sample set file's rows: CSV when ``name`` ends in ``.csv``, else JSON (module doc).

    Raises:
        ValueError: the file is empty, malformed or holds no rows.
    """
    if name.lower().endswith(".csv"):
        lines = list(csv.reader(io.StringIO(text)))
        if len(lines) < 2:
            raise ValueError(f"{name}: a header line and at least one row are needed")
        columns = tuple(lines[0])
        for number, line in enumerate(lines[1:], start=2):
            if len(line) != len(columns):
                raise ValueError(f"{name} line {number}: {len(line)} values for "
                                 f"{len(columns)} columns")
        return Batch(tuple(tuple(_cell(v) for v in line) for line in lines[1:]), columns)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{name}: not JSON ({exc})") from exc
    if isinstance(data, list):
        if not data:
            raise ValueError(f"{name}: an empty list holds no rows")
        if isinstance(data[0], Mapping):
            return _records(data)
        return Batch(tuple(tuple(r) if isinstance(r, list) else r for r in data), None, "inputs")
    if isinstance(data, Mapping) and "columns" in data and "data" in data:
        return _split(data)
    return from_payload(data)


def merge(example: Batch | None, samples: Batch | None, max_rows: int) -> Batch | None:
    """The example's rows, then the sample set's, at most ``max_rows``; None if neither.

    Raises:
        ValueError: the sample set's columns do not fit the example's.
    """
    if example is None or samples is None:
        only = example or samples
        return None if only is None else Batch(only.rows[:max_rows], only.columns, only.key,
                                               only.params)
    if example.columns is None:
        if samples.columns is not None:
            raise ValueError("the sample set has named columns but the input example is "
                             "tensor rows: log the samples in the example's format")
        rows = samples.rows
    elif samples.columns is None:
        width = len(example.columns)
        if any(not isinstance(r, tuple) or len(r) != width for r in samples.rows):
            raise ValueError(f"sample rows must hold {width} values, in the input example's "
                             f"column order {list(example.columns)}")
        rows = samples.rows
    else:
        missing = [c for c in example.columns if c not in samples.columns]
        if missing:
            raise ValueError(f"the sample set lacks columns {missing} of the input example")
        where = [samples.columns.index(c) for c in example.columns]
        rows = tuple(tuple(r[i] for i in where) for r in samples.rows)
    return Batch((example.rows + rows)[:max_rows], example.columns, example.key,
                 example.params)


def with_column(batch: Batch, column: str, value: str) -> Batch:
    """``batch`` with every row's ``column`` set to ``value``, typed as the column's cells.

    The type is the first non-null cell's (bool, int, float or text), so a slice value
    written as text in the spec is sent as the model's signature expects it.

    Raises:
        ValueError: the rows have no named columns, there is no such column, or ``value``
            cannot be read as the column's type.
    """
    if batch.columns is None:
        raise ValueError(f"the input example's rows have no named columns, so none is "
                         f"called {column!r}; slice by a header instead")
    if column not in batch.columns:
        raise ValueError(f"the input example has no column {column!r} (its columns: "
                         f"{', '.join(batch.columns)})")
    index = batch.columns.index(column)
    sample = next((row[index] for row in batch.rows if row[index] is not None), None)
    typed = _typed(value, sample, column)
    rows = tuple(tuple(typed if i == index else cell for i, cell in enumerate(row))
                 for row in batch.rows)
    return Batch(rows, batch.columns, batch.key, batch.params)


def _typed(value: str, sample: Any, column: str) -> Any:
    kind = type(sample)
    try:
        if kind is bool:
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except ValueError:
        raise ValueError(f"slice value {value!r} is not a {kind.__name__} like column "
                         f"{column!r}'s values (e.g. {sample!r})") from None
    return value


def cell_text(value: Any) -> str | None:
    """A cell as a slice value: ``true``/``false``, ``7`` for 7 and 7.0, ``7.7``.

    None for null and for cells that are not scalars.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value if isinstance(value, str) else None


def column_value(body: bytes, column: str) -> str | None:
    """The one value ``column`` holds in every row of a JSON ``/invocations`` body.

    None when the body is not a JSON payload with rows, has no such column, or its rows
    disagree (a mixed batch belongs to no one slice).
    """
    try:
        batch = from_payload(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return None
    if batch.columns is None or column not in batch.columns or not batch.rows:
        return None
    index = batch.columns.index(column)
    values = {cell_text(row[index]) for row in batch.rows}
    return values.pop() if len(values) == 1 else None
