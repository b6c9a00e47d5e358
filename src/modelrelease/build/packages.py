"""Print this interpreter's packages as JSON, for a serving base's ``python.packages`` label.

Run inside a base image: ``python -m modelrelease.build.packages``.
"""

from __future__ import annotations

import json
from importlib import metadata


def installed_packages() -> dict[str, str]:
    """Map each distribution this interpreter can import to its version."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(name.lower(), dist.version)
    return dict(sorted(found.items()))


if __name__ == "__main__":
    print(json.dumps(installed_packages(), separators=(",", ":")))
