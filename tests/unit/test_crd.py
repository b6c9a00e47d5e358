"""The ModelEndpoint CRD: generated from the models, structural, and never drifting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrelease.domain.manifests import crd_name, render_crd, structural_schema
from modelrelease.render import crd_yaml

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "deployments" / "kubernetes" / "crd.yaml"
GEN = ROOT / "scripts" / "gen-crd"


def test_committed_crd_is_what_gen_crd_generates_now() -> None:
    assert CRD.read_text() == crd_yaml(), "crd.yaml drifted: run scripts/gen-crd"


def test_gen_crd_check_passes_on_the_committed_file() -> None:
    result = subprocess.run([str(GEN), "--check"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert "is current" in result.stdout


def test_gen_crd_writes_checks_and_detects_drift(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "gen-crd"
    shutil.copy2(GEN, script)
    env = {**os.environ, "PYTHON": sys.executable}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], capture_output=True, text=True,
                              timeout=120, env=env)

    target = tmp_path / "deployments" / "kubernetes" / "crd.yaml"
    assert run("--check").returncode == 1
    assert "wrote" in run().stdout and target.read_text() == crd_yaml()
    assert "unchanged" in run().stdout
    assert run("--check").returncode == 0
    target.write_text(target.read_text() + "# edited by hand\n")
    drift = run("--check")
    assert drift.returncode == 1 and "out of date: run scripts/gen-crd" in drift.stderr
    assert run("--bogus").returncode != 0


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key], f"{path}[]")


def test_crd_shape() -> None:
    crd = render_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == crd_name() == "modelendpoints.modelrelease.io"
    spec = crd["spec"]
    assert spec["group"] == "modelrelease.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "ModelEndpoint" and spec["names"]["plural"] == "modelendpoints"
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]] == [
        ("Model", ".spec.model.name"), ("Primary", ".status.primary.version"),
        ("Canary", ".status.canary.version"), ("Weight", ".status.weight"),
        ("Phase", ".status.phase"), ("Cost/h", ".status.costPerHour"),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_crd_schema_is_structural() -> None:
    schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "$defs" not in text and "title" not in text
    assert "default" not in text and "examples" not in text
    for path, node in _nodes(schema):
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            assert "type" not in node
        else:
            assert "anyOf" not in node, path
            assert "type" in node, path
        assert node.get("additionalProperties") is not False, path
    properties = schema["properties"]
    assert properties["metadata"] == {"type": "object"}
    assert properties["status"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "nullable" not in properties["status"]
    assert schema["required"] == ["spec"]
    spec = properties["spec"]["properties"]
    assert spec["canary"]["properties"]["steps"]["items"]["properties"]["weight"]["minimum"] == 1
    assert spec["drill"]["nullable"] is True
    assert spec["model"]["x-kubernetes-validations"][0]["message"] == (
        "set exactly one of alias, version or stage")
    latency = spec["canary"]["properties"]["checks"]["properties"]["latency"]["properties"]
    assert latency["p95Ms"]["minimum"] == 0 and latency["p95Ms"]["exclusiveMinimum"] is True


DEFS = {"Leaf": {"type": "string", "title": "Leaf", "description": "A ``leaf``."}}


@pytest.mark.parametrize(("schema", "expected"), [
    pytest.param({"$ref": "#/$defs/Leaf", "$defs": DEFS},
                 {"description": "A leaf.", "type": "string"}, id="ref-inlined"),
    pytest.param({"$ref": "#/$defs/Leaf", "description": "Mine.", "$defs": DEFS},
                 {"description": "Mine.", "type": "string"}, id="ref-sibling-wins"),
    pytest.param({"allOf": [{"$ref": "#/$defs/Leaf"}], "$defs": DEFS},
                 {"description": "A leaf.", "type": "string"}, id="allof-single"),
    pytest.param({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                  "default": None, "title": "X"},
                 {"type": "integer", "nullable": True, "minimum": 1}, id="optional"),
    pytest.param({"anyOf": [{"type": "integer"}]}, {"type": "integer"}, id="anyof-one"),
    pytest.param({"anyOf": [{"type": "integer"}, {"type": "string"}],
                  "x-kubernetes-int-or-string": True, "pattern": "^x$"},
                 {"pattern": "^x$", "anyOf": [{"type": "integer"}, {"type": "string"}],
                  "x-kubernetes-int-or-string": True}, id="int-or-string-kept"),
    pytest.param({"const": "v1", "type": "string"}, {"type": "string", "enum": ["v1"]},
                 id="const"),
    pytest.param({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 5},
                 {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 5,
                  "exclusiveMaximum": True}, id="exclusive-numeric"),
    pytest.param({"type": "number", "exclusiveMinimum": True, "minimum": 0},
                 {"type": "number", "minimum": 0, "exclusiveMinimum": True}, id="exclusive-bool"),
    pytest.param({"type": "object", "additionalProperties": False,
                  "properties": {"a": {"type": "string", "format": "date-time"}}},
                 {"type": "object", "properties": {"a": {"type": "string", "format": "date-time"}}},
                 id="closed-object"),
    pytest.param({"type": "object", "additionalProperties": {"type": "integer", "title": "I"},
                  "propertyNames": {"pattern": "^a"}},
                 {"type": "object", "additionalProperties": {"type": "integer"}}, id="map"),
    pytest.param({"type": "array", "items": {"$ref": "#/$defs/Leaf"}, "uniqueItems": False,
                  "$defs": DEFS},
                 {"type": "array", "items": {"description": "A leaf.", "type": "string"}},
                 id="array"),
    pytest.param({"type": "string", "format": "duration-ish"}, {"type": "string"},
                 id="unknown-format"),
    pytest.param({"x-kubernetes-preserve-unknown-fields": True},
                 {"x-kubernetes-preserve-unknown-fields": True}, id="free-form"),
])
def test_structural_schema(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    result = structural_schema(schema)
    assert result == expected
    assert list(result) == list(expected)  # keywords in a fixed, readable order


@pytest.mark.parametrize(("schema", "words"), [
    pytest.param({"$ref": "#/$defs/Missing"}, r"'#/\$defs/Missing' is not in \$defs",
                 id="bad-ref"),
    pytest.param({"allOf": [{"type": "string"}, {"minLength": 1}]}, "allOf with 2 schemas",
                 id="allof-many"),
    pytest.param({"type": "object", "properties": {
        "u": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}},
                 r"\.u: anyOf over 2 types", id="union"),
    pytest.param({"type": "string", "contentEncoding": "base64"},
                 "'contentEncoding' has no CRD equivalent", id="unknown-keyword"),
    pytest.param({"type": "array", "items": {"description": "untyped"}}, r"\[\]: no type",
                 id="untyped"),
])
def test_structural_schema_refuses(schema: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        structural_schema(schema)
