"""What a downloaded MLflow model directory says about itself: signature and input example."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelrelease.errors import InvalidInput


@dataclass(frozen=True)
class ModelFiles:
    """The parts of an MLflow model directory the smoke test needs."""

    outputs: str | None
    serving_example: dict[str, Any] | None
    rows: int

    @classmethod
    def read(cls, model_dir: Path) -> ModelFiles:
        """Read MLmodel and ``serving_input_example.json`` (when present).

        Raises:
            InvalidInput: MLmodel is missing or not YAML.
        """
        try:
            meta = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"read model {model_dir}: MLmodel unreadable ({exc})") from exc
        outputs = ((meta.get("signature") or {}).get("outputs")) or None
        example_file = model_dir / str((meta.get("saved_input_example_info") or {}).get(
            "serving_input_path", "serving_input_example.json"))
        example: dict[str, Any] | None = None
        rows = 0
        if example_file.is_file():
            example = json.loads(example_file.read_text())
            rows = _rows(example)
        return cls(outputs=outputs, serving_example=example, rows=rows)


def _rows(example: dict[str, Any]) -> int:
    for key in ("dataframe_split", "dataframe_records", "instances", "inputs"):
        if key not in example:
            continue
        body = example[key]
        if key == "dataframe_split":
            return len(body.get("data") or [])
        if isinstance(body, list):
            return len(body)
        if isinstance(body, dict):
            first: object = next(iter(body.values()), [])
            return len(first) if isinstance(first, list) else 1
    return 1
