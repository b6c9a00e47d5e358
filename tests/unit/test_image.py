"""Image config and manifest as pure values."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from modelrelease.domain.image import (
    LABEL_CREATED_BY,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    BaseImage,
    Blob,
    Descriptor,
    Layer,
    ServingConfig,
    canonical_json,
    image_config,
    image_manifest,
    merge_env,
    sha256_digest,
)


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


BASE_LAYER = {"mediaType": OCI_LAYER_GZIP, "digest": _digest(1), "size": 100}
BASE_LAYER_ANNOTATED = {
    "mediaType": OCI_LAYER_GZIP, "digest": _digest(2), "size": 200,
    "annotations": {"z": "1", "a": "2"},
}
BASE_CONFIG: dict[str, Any] = {
    "architecture": "arm64",
    "os": "linux",
    "created": "2020-01-01T00:00:00Z",
    "config": {
        "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
        "Cmd": ["python"],
        "User": "1000",
        "ExposedPorts": {"9000/tcp": {}},
        "Labels": {"zeta": "base", "alpha": "base", "shared": "base"},
    },
    "rootfs": {"type": "layers", "diff_ids": [_digest(11), _digest(12)]},
    "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "base"}],
}
BASE = BaseImage(
    digest=_digest(99),
    manifest={"schemaVersion": 2, "layers": [BASE_LAYER, BASE_LAYER_ANNOTATED]},
    config=BASE_CONFIG,
)
EMPTY_BASE = BaseImage(digest=_digest(98), manifest={}, config={})
LAYERS = (
    Layer(Descriptor(OCI_LAYER_GZIP, _digest(21), 10, {"org.opencontainers.image.title": "deps"}),
          _digest(31)),
    Layer(Descriptor(OCI_LAYER_TAR, _digest(22), 20), _digest(22)),
)
SERVING = ServingConfig(
    entrypoint=("python", "-m", "serve"),
    cmd=("--port", "8080"),
    env={"MODEL_DIR": "/opt/ml/model", "LANG": "en_US.UTF-8"},
    prepend_paths={"PATH": "/opt/venv/bin", "PYTHONPATH": "/opt/ml/code"},
    working_dir="/opt/ml",
    port=8080,
    user="65532",
)
CREATED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
LABELS = {"shared": "ours", "io.modelrelease.model.name": "iris", "beta": "ours"}


def _config(blob: Blob) -> dict[str, Any]:
    assert blob.media_type == OCI_CONFIG
    return json.loads(blob.data)  # type: ignore[no-any-return]


# --- helpers ------------------------------------------------------------------------------


def test_sha256_digest() -> None:
    assert sha256_digest(b"") == "sha256:" + hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"b": 1, "a": [1, 2]}, b'{"a":[1,2],"b":1}', id="sorted-no-spaces"),
        pytest.param({"k": "é"}, '{"k":"é"}'.encode(), id="utf8-not-escaped"),
        pytest.param({"o": {"z": 1, "y": 2}}, b'{"o":{"y":2,"z":1}}', id="nested-sorted"),
    ],
)
def test_canonical_json(value: Any, expected: bytes) -> None:
    assert canonical_json(value) == expected


# --- merge_env ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "set_vars", "prepend", "expected"),
    [
        pytest.param([], {}, {}, [], id="empty"),
        pytest.param(["B=1", "A=2"], {}, {}, ["B=1", "A=2"], id="base-order-kept"),
        pytest.param(["B=1", "A=2"], {"A": "3"}, {}, ["B=1", "A=3"], id="set-replaces-in-place"),
        pytest.param(["B=1"], {"Z": "z", "C": "c"}, {}, ["B=1", "C=c", "Z=z"],
                     id="new-keys-sorted-after-base"),
        pytest.param(["PATH=/usr/bin"], {}, {"PATH": "/opt/bin"}, ["PATH=/opt/bin:/usr/bin"],
                     id="prepend-before-existing"),
        pytest.param(["PATH="], {}, {"PATH": "/opt/bin"}, ["PATH=/opt/bin"],
                     id="prepend-to-empty-value"),
        pytest.param([], {}, {"PYTHONPATH": "/code"}, ["PYTHONPATH=/code"],
                     id="prepend-new-key"),
        pytest.param(["PATH=/usr/bin"], {"PATH": "/only"}, {"PATH": "/opt/bin"}, ["PATH=/only"],
                     id="set-beats-prepend"),
        pytest.param(["A=1=2"], {}, {}, ["A=1=2"], id="value-containing-equals"),
        pytest.param(["NOVALUE"], {}, {}, ["NOVALUE="], id="entry-without-equals"),
        pytest.param(["A=1", "B=2", "A=3"], {}, {}, ["A=3", "B=2"],
                     id="duplicate-base-key-last-wins-first-position"),
    ],
)
def test_merge_env(
    base: list[str], set_vars: dict[str, str], prepend: dict[str, str], expected: list[str]
) -> None:
    assert merge_env(base, set_vars, prepend) == expected


def test_merge_env_accepts_an_iterator() -> None:
    assert merge_env(iter(["B=1", "A=2"]), {}, {}) == ["B=1", "A=2"]


# --- image_config -------------------------------------------------------------------------


def test_image_config_full() -> None:
    config = _config(image_config(BASE, LAYERS, SERVING, LABELS, CREATED))
    inner = config["config"]
    assert config["architecture"] == "arm64"
    assert config["os"] == "linux"
    assert config["created"] == "2024-05-06T07:08:09Z"
    assert inner["Entrypoint"] == ["python", "-m", "serve"]
    assert inner["Cmd"] == ["--port", "8080"]
    assert inner["Env"] == [
        "PATH=/opt/venv/bin:/usr/bin",
        "LANG=en_US.UTF-8",
        "MODEL_DIR=/opt/ml/model",
        "PYTHONPATH=/opt/ml/code",
    ]
    assert inner["WorkingDir"] == "/opt/ml"
    assert inner["User"] == "65532"
    assert inner["ExposedPorts"] == {"9000/tcp": {}, "8080/tcp": {}}
    assert list(inner["Labels"].items()) == [
        ("alpha", "base"),
        ("beta", "ours"),
        ("io.modelrelease.model.name", "iris"),
        ("shared", "ours"),
        ("zeta", "base"),
    ]
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": [_digest(11), _digest(12), _digest(31), _digest(22)],
    }
    assert config["history"] == [
        {"created": "2020-01-01T00:00:00Z", "created_by": "base"},
        {"created": "2024-05-06T07:08:09Z", "created_by": "modelrelease"},
        {"created": "2024-05-06T07:08:09Z", "created_by": "modelrelease"},
    ]


def test_image_config_does_not_modify_the_base() -> None:
    before = json.dumps(BASE_CONFIG, sort_keys=True)
    image_config(BASE, LAYERS, SERVING, LABELS, CREATED)
    assert json.dumps(BASE_CONFIG, sort_keys=True) == before


def test_image_config_on_an_empty_base() -> None:
    serving = ServingConfig(entrypoint=["serve"])
    config = _config(image_config(EMPTY_BASE, LAYERS[:1], serving, {}, CREATED))
    assert config == {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-06T07:08:09Z",
        "config": {
            "Entrypoint": ["serve"],
            "Env": [],
            "WorkingDir": "/",
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": {},
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(31)]},
        "history": [{"created": "2024-05-06T07:08:09Z", "created_by": "modelrelease"}],
    }


@pytest.mark.parametrize(
    ("base_config", "cmd", "expected"),
    [
        pytest.param({"Cmd": ["python"]}, (), None, id="empty-cmd-removes-base-cmd"),
        pytest.param({}, (), None, id="empty-cmd-no-base-cmd"),
        pytest.param({"Cmd": ["python"]}, ("--x",), ["--x"], id="cmd-replaces"),
        pytest.param(None, ["a", "b"], ["a", "b"], id="base-config-null"),
    ],
)
def test_image_config_cmd(
    base_config: dict[str, Any] | None, cmd: tuple[str, ...], expected: list[str] | None
) -> None:
    base = BaseImage(_digest(1), {}, {"config": base_config})
    inner = _config(image_config(base, (), ServingConfig(["e"], cmd=cmd), {}, CREATED))["config"]
    assert inner.get("Cmd", "absent") == (expected if expected is not None else "absent")


@pytest.mark.parametrize(
    ("base_config", "user", "expected"),
    [
        pytest.param({"User": "1000"}, None, "1000", id="none-keeps-base-user"),
        pytest.param({"User": "1000"}, "0", "0", id="set-replaces"),
        pytest.param({}, None, None, id="none-and-no-base-user"),
    ],
)
def test_image_config_user(
    base_config: dict[str, Any], user: str | None, expected: str | None
) -> None:
    base = BaseImage(_digest(1), {}, {"config": base_config})
    serving = ServingConfig(["e"], user=user)
    assert _config(image_config(base, (), serving, {}, CREATED))["config"].get("User") == expected


@pytest.mark.parametrize(
    ("base_ports", "port", "expected"),
    [
        pytest.param(None, 8080, {"8080/tcp": {}}, id="no-base-ports"),
        pytest.param({"80/tcp": {}}, 8080, {"80/tcp": {}, "8080/tcp": {}}, id="added-to-base"),
        pytest.param({"8080/tcp": {}}, 8080, {"8080/tcp": {}}, id="same-port-once"),
        pytest.param(None, None, None, id="no-port-none-exposed"),
        pytest.param({"80/tcp": {}}, None, {"80/tcp": {}}, id="no-port-base-kept"),
    ],
)
def test_image_config_exposed_ports(
    base_ports: dict[str, Any] | None, port: int | None, expected: dict[str, Any] | None
) -> None:
    base = BaseImage(_digest(1), {}, {"config": {"ExposedPorts": base_ports}})
    serving = ServingConfig(["e"], port=port)
    inner = _config(image_config(base, (), serving, {}, CREATED))["config"]
    assert inner.get("ExposedPorts") == expected


@pytest.mark.parametrize(
    ("labels", "created_by"),
    [
        pytest.param({}, "modelrelease", id="default-created-by"),
        pytest.param({LABEL_CREATED_BY: "modelrelease 1.2 (ci)"}, "modelrelease 1.2 (ci)",
                     id="created-by-label"),
    ],
)
def test_image_config_history_created_by(labels: dict[str, str], created_by: str) -> None:
    config = _config(image_config(EMPTY_BASE, LAYERS, ServingConfig(["e"]), labels, CREATED))
    assert [h["created_by"] for h in config["history"]] == [created_by, created_by]


@pytest.mark.parametrize(
    ("rootfs", "expected"),
    [
        pytest.param(None, {"type": "layers", "diff_ids": [_digest(31)]}, id="no-rootfs"),
        pytest.param({"type": "layers"}, {"type": "layers", "diff_ids": [_digest(31)]},
                     id="rootfs-without-diff-ids"),
        pytest.param({"type": "layers", "diff_ids": [_digest(5)]},
                     {"type": "layers", "diff_ids": [_digest(5), _digest(31)]},
                     id="appended-after-base"),
    ],
)
def test_image_config_rootfs(rootfs: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    base = BaseImage(_digest(1), {}, {"rootfs": rootfs})
    config = _config(image_config(base, LAYERS[:1], ServingConfig(["e"]), {}, CREATED))
    assert config["rootfs"] == expected


@pytest.mark.parametrize(
    ("created", "stamp"),
    [
        pytest.param(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z", id="utc"),
        pytest.param(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
                     "2024-01-02T01:04:05Z", id="offset-converted-to-utc"),
        pytest.param(datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00Z", id="epoch"),
        pytest.param(datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2024-01-02T03:04:05Z",
                     id="microseconds-dropped"),
    ],
)
def test_image_config_created_comes_from_the_argument(created: datetime, stamp: str) -> None:
    config = _config(image_config(BASE, LAYERS, SERVING, LABELS, created))
    assert config["created"] == stamp
    assert {h["created"] for h in config["history"][1:]} == {stamp}


# --- image_manifest -----------------------------------------------------------------------


def test_image_manifest() -> None:
    config = image_config(BASE, LAYERS, SERVING, LABELS, CREATED)
    manifest = image_manifest(BASE, config, LAYERS, {"b": "2", "a": "1"})
    assert manifest.media_type == OCI_MANIFEST
    body = json.loads(manifest.data)
    assert body == {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": len(config.data)},
        "layers": [
            BASE_LAYER,
            {**BASE_LAYER_ANNOTATED, "annotations": {"a": "2", "z": "1"}},
            {"mediaType": OCI_LAYER_GZIP, "digest": _digest(21), "size": 10,
             "annotations": {"org.opencontainers.image.title": "deps"}},
            {"mediaType": OCI_LAYER_TAR, "digest": _digest(22), "size": 20},
        ],
        "annotations": {"a": "1", "b": "2"},
    }
    assert manifest.data == canonical_json(body)
    assert manifest.digest == sha256_digest(manifest.data)


def test_image_manifest_base_without_layers() -> None:
    config = Blob(OCI_CONFIG, b"{}")
    body = json.loads(image_manifest(EMPTY_BASE, config, (), {}).data)
    assert body["layers"] == []
    assert body["annotations"] == {}


def _build(
    labels: Mapping[str, str], annotations: Mapping[str, str], env: Mapping[str, str]
) -> tuple[bytes, bytes]:
    serving = ServingConfig(
        entrypoint=SERVING.entrypoint, cmd=SERVING.cmd, env=env,
        prepend_paths=SERVING.prepend_paths, working_dir=SERVING.working_dir, user=SERVING.user,
    )
    config = image_config(BASE, LAYERS, serving, labels, CREATED)
    return config.data, image_manifest(BASE, config, LAYERS, annotations).data


def test_same_inputs_give_byte_identical_blobs() -> None:
    first = _build(LABELS, {"a": "1", "b": "2"}, SERVING.env)
    # The same content with mappings built in another insertion order.
    second = _build(dict(reversed(list(LABELS.items()))), {"b": "2", "a": "1"},
                    dict(reversed(list(SERVING.env.items()))))
    assert first == second


def test_a_different_created_changes_the_digests() -> None:
    one = image_config(BASE, LAYERS, SERVING, LABELS, CREATED)
    two = image_config(BASE, LAYERS, SERVING, LABELS, CREATED + timedelta(seconds=1))
    assert one.digest != two.digest


# --- Descriptor / Blob / BaseImage --------------------------------------------------------


@pytest.mark.parametrize(
    ("descriptor", "as_json"),
    [
        pytest.param(Descriptor(OCI_LAYER_TAR, _digest(1), 5),
                     {"mediaType": OCI_LAYER_TAR, "digest": _digest(1), "size": 5},
                     id="no-annotations-omitted"),
        pytest.param(Descriptor(OCI_LAYER_TAR, _digest(1), 5, {"z": "1", "a": "2"}),
                     {"mediaType": OCI_LAYER_TAR, "digest": _digest(1), "size": 5,
                      "annotations": {"a": "2", "z": "1"}},
                     id="annotations-sorted"),
    ],
)
def test_descriptor_round_trip(descriptor: Descriptor, as_json: dict[str, Any]) -> None:
    assert descriptor.to_json() == as_json
    assert list(descriptor.to_json()) == list(as_json)
    assert Descriptor.from_json(as_json) == descriptor
    assert Descriptor.from_json(descriptor.to_json()).to_json() == as_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"mediaType": "m", "digest": "d", "size": "7", "annotations": None},
                     Descriptor("m", "d", 7, {}), id="null-annotations-and-string-size"),
        pytest.param({"mediaType": "m", "digest": "d", "size": 7, "urls": ["x"]},
                     Descriptor("m", "d", 7, {}), id="unknown-fields-ignored"),
    ],
)
def test_descriptor_from_json_lenient(value: dict[str, Any], expected: Descriptor) -> None:
    assert Descriptor.from_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"digest": "d", "size": 1}, id="no-media-type"),
        pytest.param({"mediaType": "m", "size": 1}, id="no-digest"),
        pytest.param({"mediaType": "m", "digest": "d"}, id="no-size"),
    ],
)
def test_descriptor_from_json_missing_field(value: dict[str, Any]) -> None:
    with pytest.raises(KeyError):
        Descriptor.from_json(value)


def test_blob_descriptor() -> None:
    blob = Blob("application/x", b"hello")
    assert blob.digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert blob.descriptor == Descriptor("application/x", blob.digest, 5)


@pytest.mark.parametrize(
    ("config", "labels"),
    [
        pytest.param({}, {}, id="no-config"),
        pytest.param({"config": None}, {}, id="null-config"),
        pytest.param({"config": {"Labels": None}}, {}, id="null-labels"),
        pytest.param({"config": {"Labels": {"a": "1"}}}, {"a": "1"}, id="labels"),
    ],
)
def test_base_image_labels(config: dict[str, Any], labels: dict[str, str]) -> None:
    assert BaseImage(_digest(1), {}, config).labels == labels


def test_base_image_layers() -> None:
    assert BASE.layers == (
        Descriptor(OCI_LAYER_GZIP, _digest(1), 100),
        Descriptor(OCI_LAYER_GZIP, _digest(2), 200, {"z": "1", "a": "2"}),
    )
    assert EMPTY_BASE.layers == ()
