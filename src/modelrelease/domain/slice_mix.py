"""The generated load's slice mix, pure: what each slice value's requests send.

``spec.canary.checks.slices`` names where a request's slice value goes (a header, or an
input column of the model's input example) and the mix of values. ``slice_requests`` turns
that into one request shape per value: the header set to the value, or the input example
with the column set to it (typed as the example's cells). The judge then checks each slice
on its own (``domain.slices``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelrelease.domain import sample_set
from modelrelease.spec import SliceCheck

__all__ = ["SliceRequest", "slice_requests"]


@dataclass(frozen=True)
class SliceRequest:
    """One slice value of the mix: its weight and what its requests send."""

    value: str
    weight: float
    payload: Mapping[str, Any] | None = None  # None: the input example as it is
    headers: Mapping[str, str] = field(default_factory=dict)


def slice_requests(check: SliceCheck, example: Mapping[str, Any] | None
                   ) -> tuple[SliceRequest, ...]:
    """One ``SliceRequest`` per value of ``check.mix``, in the mix's order.

    Raises:
        ValueError: a column slice without an input example, or one the example cannot
            carry (no such column, a value not of the column's type).
    """
    if check.header is not None:
        return tuple(SliceRequest(value, weight, None, {check.header: value})
                     for value, weight in check.mix.items())
    assert check.column is not None
    if example is None:
        raise ValueError(f"slices by column {check.column!r} need the version's input "
                         "example to set it in; log the model with one (input_example=...) "
                         "or slice by a header")
    batch = sample_set.from_payload(example)
    return tuple(SliceRequest(value, weight,
                              sample_set.with_column(batch, check.column, value).payload())
                 for value, weight in check.mix.items())
