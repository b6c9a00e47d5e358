"""`render_file`: every object of a first release as YAML, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelrelease.errors import InvalidInput
from modelrelease.render import PLACEHOLDER_DIGEST, dump_documents, render_file

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "deployments" / "endpoints" / "iris.yaml"
DIGEST = "sha256:" + "cd" * 32


def test_dry_run_of_the_demo_endpoint() -> None:
    text = render_file(IRIS)
    header = text.split("---", 1)[0]
    assert PLACEHOLDER_DIGEST in header and "PLACEHOLDER" in header
    assert "<resolved at release>" in header
    documents = list(yaml.safe_load_all(text))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("ModelEndpoint", "iris"),
        ("Service", "iris"), ("Service", "iris-primary"), ("Service", "iris-canary"),
        ("Deployment", "iris-blue"),
        ("HorizontalPodAutoscaler", "iris-primary"), ("PodDisruptionBudget", "iris-primary"),
    ]
    # as a first release leaves them: the slot its canary ran in is the primary
    primary_service, primary, hpa = documents[2], documents[4], documents[5]
    assert primary_service["spec"]["selector"]["modelrelease.io/slot"] == "blue"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "iris-blue"
    assert primary["metadata"]["labels"]["track"] == "primary"
    assert primary["spec"]["replicas"] == 1  # autoscaling.minReplicas of the demo
    image = primary["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"127.0.0.1:5000/ml/iris@{PLACEHOLDER_DIGEST}"
    assert primary["metadata"]["annotations"]["modelrelease.io/release-id"] == "dry-run"
    assert render_file(IRIS) == text  # deterministic


def test_dry_run_with_a_built_image() -> None:
    text = render_file(IRIS, image=f"127.0.0.1:5000/ml/iris@{DIGEST}", model_version="4",
                       release_id="r-9")
    assert PLACEHOLDER_DIGEST not in text and "resolved" not in text
    deployment = list(yaml.safe_load_all(text))[4]
    assert deployment["metadata"]["annotations"]["modelrelease.io/model-version"] == "4"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "4"


def test_dry_run_refuses_an_unpinned_image_and_a_bad_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not pinned by digest"):
        render_file(IRIS, image="127.0.0.1:5000/ml/iris:v4")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: modelrelease.io/v1alpha1\nkind: ModelEndpoint\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml: metadata: required"):
        render_file(bad)


def test_dump_documents_uses_literal_blocks_for_multiline_text() -> None:
    text = dump_documents([{"a": "one\ntwo\n", "b": 1}], "# head\n")
    assert text == "# head\n---\na: |\n  one\n  two\nb: 1\n"
