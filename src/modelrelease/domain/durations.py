"""Lengths of time as people write them (``1h30m``, ``30s``). Pure."""

from __future__ import annotations

from datetime import timedelta


def format_duration(value: timedelta) -> str:
    """The short form ``spec.values.parse_duration`` reads: ``1h30m``, ``30s``, ``1.5s``, ``0s``."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if minutes else ""
    if fraction:
        text += f"{seconds}.{fraction:06d}".rstrip("0") + "s"
    elif seconds or not text:
        text += f"{seconds}s"
    return sign + text
