"""Property tests over the ModelEndpoint spec (hypothesis).

- Any valid spec round-trips: YAML -> model -> YAML -> model gives the same model, and the
  second YAML is the first, byte for byte.
- Junk never escapes as anything but InvalidInput: random text, random YAML values, and
  valid documents with a random part replaced by random data.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelrelease.errors import InvalidInput
from modelrelease.spec import (
    MAX_ENDPOINT_NAME,
    endpoint_yaml,
    load_endpoint,
    parse_endpoint,
    spec_hash,
)

PROFILE = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])

# --- valid documents --------------------------------------------------------------------------

label = st.from_regex(r"\A[a-z]([a-z0-9-]{0,20}[a-z0-9])?\Z")
names = label.filter(lambda n: len(n) <= MAX_ENDPOINT_NAME)
model_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,30}\Z")
aliases = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,15}\Z").filter(
    lambda a: a.lower() != "latest" and not (a[0] in "vV" and a[1:].isdigit()))
selectors = st.one_of(
    st.builds(lambda a: {"alias": a}, aliases),
    st.builds(lambda v: {"version": v}, st.integers(1, 10_000)),
    st.builds(lambda s: {"stage": s}, st.sampled_from(["Staging", "Production", "production"])),
)
repos = st.builds(lambda host, path: f"{host}/{path}",
                  st.sampled_from(["127.0.0.1:5000", "registry.example.com", "localhost:5001"]),
                  st.from_regex(r"\Aml/[a-z0-9]{1,10}\Z"))
bases = st.one_of(
    st.builds(lambda r, t: f"{r}:{t}", repos,
              st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}\Z")),
    st.builds(lambda r, h: f"{r}@sha256:{h}", repos, st.from_regex(r"\A[0-9a-f]{64}\Z")),
)
cpus = st.one_of(st.integers(1, 64), st.builds(lambda m: f"{m}m", st.integers(1, 64_000)),
                 st.sampled_from(["0.5", "1.5", "2"]))
memories = st.one_of(st.builds(lambda n, u: f"{n}{u}", st.integers(1, 512),
                               st.sampled_from(["Mi", "Gi"])),
                     st.sampled_from(["1e9", "2G", "1048576"]))
accelerators = st.dictionaries(
    st.sampled_from(["nvidia.com/gpu", "amd.com/gpu", "example.org/fpga"]),
    st.integers(1, 8), max_size=2)
holds = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.integers(1, 59), st.sampled_from(["s", "m", "ms"]))
    .filter(lambda h: h != "0ms" and not (h.endswith("ms") and int(h[:-2]) < 1)),
    st.builds(lambda n: f"PT{n}S", st.integers(1, 3600)),
    st.integers(1, 3600),
    st.builds(lambda h, m: f"{h}h{m}m", st.integers(1, 23), st.integers(0, 59)),
)
weights = st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True).map(sorted)


@st.composite
def steps(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [{"weight": w, "hold": draw(holds)} for w in draw(weights)]


@st.composite
def autoscaling(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(1, 100))
    high = draw(st.integers(low, 100))
    return {"minReplicas": low, "maxReplicas": high,
            "targetUtilization": draw(st.integers(1, 100))}


@st.composite
def latency(draw: st.DrawFn) -> dict[str, Any]:
    p95 = draw(st.floats(0.5, 1000, allow_nan=False))
    p99 = draw(st.floats(p95, 5000, allow_nan=False))
    result: dict[str, Any] = {"maxRegression": draw(st.floats(0, 10))}
    if draw(st.booleans()):
        result["p95Ms"] = p95
    if draw(st.booleans()):
        result["p99Ms"] = p99
    return result


crons = st.one_of(
    st.sampled_from(["@daily", "@hourly", "@weekly", "*/5 * * * *"]),
    st.builds(lambda m, h, d: f"{m} {h} * * {d}", st.integers(0, 59), st.integers(0, 23),
              st.integers(0, 7)),
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": draw(model_names), **draw(selectors)},
        "image": {"repository": draw(repos), "base": draw(bases)},
        "resources": {"cpu": draw(cpus), "memory": draw(memories)},
    }
    gpus = draw(accelerators)
    if gpus:
        spec["resources"]["accelerators"] = gpus
    if draw(st.booleans()):
        spec["autoscaling"] = draw(autoscaling())
    if draw(st.booleans()):
        spec["canary"] = {"steps": draw(steps()), "checks": {
            "latency": draw(latency()),
            "maxErrorRate": draw(st.floats(0, 1)),
            "minRequests": draw(st.integers(1, 10_000)),
        }}
    if draw(st.booleans()):
        spec["promotion"] = {"alias": draw(aliases), "tags": draw(st.booleans())}
    if draw(st.booleans()):
        spec["smoke"] = {"requireInputExample": draw(st.booleans())}
    if draw(st.booleans()):
        spec["drill"] = {"schedule": draw(crons),
                         "fault": draw(st.sampled_from(["latency", "errors", "crash"]))}
    return {"apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
            "metadata": {"name": draw(names), "namespace": draw(label)}, "spec": spec}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("properties")


@PROFILE
@given(document=documents())
def test_valid_specs_round_trip_through_yaml(workdir: Path, document: dict[str, Any]) -> None:
    path = workdir / "endpoint.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    endpoint = load_endpoint(path)
    first = endpoint_yaml(endpoint)
    path.write_text(first)
    again = load_endpoint(path)
    assert again == endpoint
    assert endpoint_yaml(again) == first
    assert spec_hash(again) == spec_hash(endpoint)


# --- junk -------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),
    st.text(max_size=30), st.sampled_from(["30s", "1Gi", "nvidia.com/gpu", "", "@daily"]),
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers(), st.booleans()),
                        children, max_size=4),
    ),
    max_leaves=25,
)


def _expect_only_invalid_input(call: Any, source: str) -> None:
    """``call`` returns or raises InvalidInput, each line of which names the source."""
    try:
        call()
    except InvalidInput as exc:
        lines = exc.message.splitlines()
        assert lines and all(line.startswith(f"{source}: ") for line in lines), lines


@PROFILE
@given(text=st.text(alphabet=string.printable + "{}[]:-#&*!|>'\"%@`\u00e9\u2603", max_size=300))
def test_random_text_raises_only_invalid_input(workdir: Path, text: str) -> None:
    path = workdir / "junk.yaml"
    path.write_text(text, encoding="utf-8")
    _expect_only_invalid_input(lambda: load_endpoint(path), str(path))


@PROFILE
@given(data=junk)
def test_random_values_raise_only_invalid_input(workdir: Path, data: Any) -> None:
    path = workdir / "junk-value.yaml"
    path.write_text(yaml.safe_dump(data))
    _expect_only_invalid_input(lambda: load_endpoint(path), str(path))
    _expect_only_invalid_input(lambda: parse_endpoint(data, source="x"), "x")


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@PROFILE
@given(document=documents(), data=st.data())
def test_a_valid_document_with_a_random_part_replaced(document: dict[str, Any],
                                                      data: st.DataObject) -> None:
    broken = copy.deepcopy(document)
    where = data.draw(st.sampled_from(_paths(broken)))
    node: Any = broken
    for part in where[:-1]:
        node = node[part]
    if data.draw(st.booleans()):
        node[where[-1]] = data.draw(junk)
    elif isinstance(node, dict):
        del node[where[-1]]
    else:
        node.append(data.draw(junk))
    _expect_only_invalid_input(lambda: parse_endpoint(broken, source="f.yaml"), "f.yaml")
