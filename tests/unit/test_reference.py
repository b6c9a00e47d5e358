"""ImageRef parsing, printing and loopback detection."""

from __future__ import annotations

import pytest

from modelrelease.domain.reference import (
    DEFAULT_REGISTRY,
    ImageRef,
    is_loopback,
    valid_digest,
    valid_tag,
)
from modelrelease.errors import InvalidInput

DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        pytest.param("ubuntu", "docker.io", "library/ubuntu", None, None, id="bare-name"),
        pytest.param("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None, id="bare-tag"),
        pytest.param("bitnami/redis", "docker.io", "bitnami/redis", None, None, id="hub-user-repo"),
        pytest.param("docker.io/ubuntu", "docker.io", "library/ubuntu", None, None,
                     id="explicit-docker-io-gets-library"),
        pytest.param("docker.io/library/ubuntu", "docker.io", "library/ubuntu", None, None,
                     id="explicit-library"),
        pytest.param("ghcr.io/org/team/app:v1", "ghcr.io", "org/team/app", "v1", None,
                     id="registry-with-dot-nested"),
        pytest.param("registry.example.com:5000/ml/model:1.2.3", "registry.example.com:5000",
                     "ml/model", "1.2.3", None, id="registry-with-port-and-tag"),
        pytest.param("myhost:5000/app", "myhost:5000", "app", None, None,
                     id="registry-port-without-dot"),
        pytest.param("localhost/app", "localhost", "app", None, None, id="localhost-no-port"),
        pytest.param("localhost:5000/app:dev", "localhost:5000", "app", "dev", None,
                     id="localhost-port-tag"),
        pytest.param("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", None, None, id="ip-port"),
        pytest.param("myorg/app", "docker.io", "myorg/app", None, None,
                     id="first-component-without-dot-is-repo"),
        pytest.param(f"ubuntu@{DIGEST}", "docker.io", "library/ubuntu", None, DIGEST,
                     id="digest-only"),
        pytest.param(f"ghcr.io/a/b:v2@{DIGEST}", "ghcr.io", "a/b", "v2", DIGEST,
                     id="tag-and-digest"),
        pytest.param(f"localhost:5000/a@{DIGEST}", "localhost:5000", "a", None, DIGEST,
                     id="port-and-digest-no-tag"),
        pytest.param("  ubuntu:latest \n", "docker.io", "library/ubuntu", "latest", None,
                     id="surrounding-whitespace"),
        pytest.param("a--b/c__d/e.f_g:T_1.x-y", "docker.io", "a--b/c__d/e.f_g", "T_1.x-y", None,
                     id="all-separators"),
        pytest.param("x:" + "t" * 128, "docker.io", "library/x", "t" * 128, None,
                     id="tag-128-chars"),
    ],
)
def test_parse_valid(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef.parse(text)
    assert ref == ImageRef(registry, repository, tag, digest)
    # Printing and parsing again gives the same value.
    assert ImageRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "names"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param("ubuntu@sha256:abc", "digest 'sha256:abc'", id="digest-too-short"),
        pytest.param("ubuntu@sha256:" + "A" * 64, "digest 'sha256:" + "A" * 64 + "'",
                     id="digest-uppercase"),
        pytest.param("ubuntu@md5:" + "a" * 64, "digest 'md5:", id="digest-wrong-algorithm"),
        pytest.param(f"ubuntu@{DIGEST}@{DIGEST}", "is not sha256:<64 hex>",
                     id="two-digests"),
        pytest.param("ubuntu:", "invalid tag ''", id="empty-tag"),
        pytest.param("ubuntu:.hidden", "invalid tag '.hidden'", id="tag-leading-dot"),
        pytest.param("a/b:c/d", "invalid repository 'a/b:c/d'", id="colon-not-in-last"),
        pytest.param("ubuntu:" + "t" * 129, "invalid tag", id="tag-129-chars"),
        pytest.param("ubuntu:bad tag", "invalid tag 'bad tag'", id="tag-with-space"),
        pytest.param("Ubuntu", "invalid repository 'Ubuntu'", id="uppercase-repo"),
        pytest.param("ghcr.io/Org/app", "invalid repository 'Org/app'",
                     id="uppercase-after-registry"),
        pytest.param("ghcr.io/a//b", "invalid repository 'a//b'", id="empty-component"),
        pytest.param("a..b", "invalid repository 'a..b'", id="double-dot"),
        pytest.param("-ab", "invalid repository '-ab'", id="leading-dash"),
        pytest.param("ab_", "invalid repository 'ab_'", id="trailing-underscore"),
        pytest.param("ghcr.io/", "invalid repository ''", id="registry-only"),
        pytest.param(f"ghcr.io/@{DIGEST}", "invalid repository ''", id="registry-and-digest"),
    ],
)
def test_parse_invalid_names_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(InvalidInput) as info:
        ImageRef.parse(text)
    assert names in str(info.value)
    assert info.value.message.startswith("parse image reference")
    assert info.value.retriable is False


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        pytest.param(ImageRef("r.io", "a"), "latest", id="nothing-means-latest"),
        pytest.param(ImageRef("r.io", "a", tag="v1"), "v1", id="tag"),
        pytest.param(ImageRef("r.io", "a", tag="v1", digest=DIGEST), DIGEST,
                     id="digest-beats-tag"),
        pytest.param(ImageRef("r.io", "a", digest=DIGEST), DIGEST, id="digest"),
    ],
)
def test_reference(ref: ImageRef, expected: str) -> None:
    assert ref.reference == expected


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        pytest.param(ImageRef("r.io", "a/b"), "r.io/a/b", id="plain"),
        pytest.param(ImageRef("r.io", "a/b", tag="v1"), "r.io/a/b:v1", id="tag"),
        pytest.param(ImageRef("r.io:5000", "a", digest=DIGEST), f"r.io:5000/a@{DIGEST}",
                     id="digest"),
        pytest.param(ImageRef("r.io", "a", tag="v1", digest=DIGEST), f"r.io/a:v1@{DIGEST}",
                     id="tag-and-digest"),
    ],
)
def test_str(ref: ImageRef, text: str) -> None:
    assert str(ref) == text
    assert ImageRef.parse(text) == ref


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("ubuntu", id="unpinned"),
        pytest.param("ghcr.io/a/b:v1", id="tagged"),
        pytest.param(f"localhost:5000/a:v1@{DIGEST}", id="already-pinned"),
    ],
)
def test_with_digest_and_with_tag(text: str) -> None:
    ref = ImageRef.parse(text)
    pinned = ref.with_digest(OTHER_DIGEST)
    assert (pinned.registry, pinned.repository, pinned.tag) == (
        ref.registry, ref.repository, ref.tag)
    assert pinned.digest == OTHER_DIGEST
    assert pinned.reference == OTHER_DIGEST
    assert ImageRef.parse(str(pinned)) == pinned

    retagged = pinned.with_tag("next")
    assert retagged == ImageRef(ref.registry, ref.repository, "next", None)
    assert ImageRef.parse(str(retagged)) == retagged
    untagged = pinned.with_tag(None)
    assert untagged == ImageRef(ref.registry, ref.repository, None, None)
    assert untagged.reference == "latest"
    # The original is a frozen value and is not changed.
    assert ImageRef.parse(text) == ref


def test_default_registry() -> None:
    assert DEFAULT_REGISTRY == "docker.io"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("localhost", True, id="localhost"),
        pytest.param("localhost:5000", True, id="localhost-port"),
        pytest.param("127.0.0.1", True, id="ipv4"),
        pytest.param("127.0.0.1:5000", True, id="ipv4-port"),
        pytest.param("127.1.2.3:80", True, id="ipv4-other-loopback"),
        pytest.param("::1", True, id="ipv6-bare"),
        pytest.param("[::1]:5000", True, id="ipv6-bracket-port"),
        pytest.param("registry.example.com", False, id="remote"),
        pytest.param("registry.example.com:5000", False, id="remote-port"),
        pytest.param("10.0.0.1:5000", False, id="private-ip"),
        pytest.param("[2001:db8::1]:5000", False, id="ipv6-remote"),
        pytest.param("2001:db8::1", False, id="ipv6-remote-bare"),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("[::1]", True, id="ipv6-bracket-no-port"),
        pytest.param("localhost.evil.example", False, id="localhost-prefixed-domain"),
        pytest.param("localhostile:5000", False, id="localhost-prefixed-name"),
        pytest.param("127.example.com", False, id="127-prefixed-domain"),
    ],
)
def test_is_loopback_bugs(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


@pytest.mark.parametrize(
    ("value", "tag_ok", "digest_ok"),
    [
        pytest.param("v1", True, False, id="tag"),
        pytest.param("_x", True, False, id="tag-underscore-first"),
        pytest.param("-x", False, False, id="tag-dash-first"),
        pytest.param(DIGEST, False, True, id="digest"),
        pytest.param(DIGEST + "0", False, False, id="digest-65"),
        pytest.param("", False, False, id="empty"),
    ],
)
def test_valid_tag_and_digest(value: str, tag_ok: bool, digest_ok: bool) -> None:
    assert valid_tag(value) is tag_ok
    assert valid_digest(value) is digest_ok
