"""The rollback-drill deployment's schedules, from the endpoints' ``drill:`` sections. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelrelease.spec import ModelEndpoint

BEGIN = "# BEGIN drill schedules (scripts/gen-prefect)"
END = "# END drill schedules"


def drill_schedules(endpoints: Mapping[str, ModelEndpoint]) -> list[dict[str, Any]]:
    """One Prefect cron schedule per endpoint with a drill, by endpoint name, in name order."""
    return [
        {"cron": endpoint.spec.drill.schedule, "timezone": "UTC", "slug": f"drill-{name}",
         "parameters": {"endpoint": name, "fault": endpoint.spec.drill.fault.value}}
        for name, endpoint in sorted(endpoints.items())
        if endpoint.spec.drill is not None
    ]


def with_schedules(prefect_yaml: str, block: str) -> str:
    """``prefect_yaml`` with the text between the drill-schedule markers replaced by ``block``.

    Raises:
        ValueError: The markers are missing or out of order.
    """
    start, end = prefect_yaml.find(BEGIN), prefect_yaml.find(END)
    if start < 0 or end < start:
        raise ValueError(f"prefect.yaml lacks the lines {BEGIN!r} ... {END!r}")
    indent = prefect_yaml[prefect_yaml.rfind("\n", 0, start) + 1:start]
    lines = "".join(f"{indent}{line}\n" for line in block.splitlines())
    return prefect_yaml[:start + len(BEGIN)] + "\n" + lines + indent + prefect_yaml[end:]
