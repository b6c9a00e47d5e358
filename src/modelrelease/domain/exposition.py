"""The Prometheus text exposition format (0.0.4), parsed into samples. Pure.

``parse(text)`` turns what a pod's ``/metrics`` answers into ``Sample`` values: the name
(``_total``, ``_bucket``, ``_count`` suffixes kept), the labels and the value. Comments
(``# HELP``, ``# TYPE``) and blank lines are skipped; timestamps are dropped. Label values
are unescaped (backslash, double quote, newline). A line that is not a sample is an error, with its
line number, rather than a silently missing series.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: a series and its value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        """The value of label ``key``, or None when the series has no such label."""
        return dict(self.labels).get(key)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether this is series ``name`` with (at least) ``labels``."""
        return self.name == name and all(self.label(k) == v for k, v in labels.items())


def _labels(text: str, number: int) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None:
            raise ValueError(f"line {number}: bad labels {{{text}}}")
        value = re.sub(r"\\[\\\"n]", lambda m: _ESCAPES[m.group(0)], match.group(2))
        found.append((match.group(1), value))
        position = match.end()
    return tuple(sorted(found))


def parse(text: str) -> tuple[Sample, ...]:
    """Every sample in ``text``, in order.

    Raises:
        ValueError: a line that is neither a comment, blank, nor a sample.
    """
    samples: list[Sample] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"line {number}: not a sample: {line[:80]!r}")
        name, labels, value = match.groups()
        try:
            number_value = float(value)
        except ValueError:
            raise ValueError(f"line {number}: bad value {value!r}") from None
        samples.append(Sample(name, _labels(labels or "", number), number_value))
    return tuple(samples)


def select(samples: Iterable[Sample], name: str, **labels: str) -> list[Sample]:
    """The samples of series ``name`` that carry ``labels``."""
    return [s for s in samples if s.matches(name, labels)]
