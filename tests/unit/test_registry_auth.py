"""Registry credentials from settings and real docker config files; challenge parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from modelrelease.adapters.registry_auth import (
    Credentials,
    credentials_for,
    docker_config_path,
    parse_challenge,
)
from modelrelease.errors import InvalidInput
from modelrelease.settings import RegistryConfig


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A HOME of our own and no DOCKER_CONFIG, so the user's real config is never read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    return home


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(path: Path, auths: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": auths, "credsStore": "desktop"}))
    return path


@pytest.mark.parametrize(
    ("auths", "host", "expected"),
    [
        pytest.param({"reg.example:5000": {"auth": b64("alice:pw")}}, "reg.example:5000",
                     Credentials("alice", "pw"), id="auth-base64"),
        pytest.param({"reg.example": {"auth": b64("alice:p:w")}}, "reg.example",
                     Credentials("alice", "p:w"), id="password-with-colon"),
        pytest.param({"reg.example": {"auth": b64("alice")}}, "reg.example",
                     Credentials("alice", ""), id="auth-without-colon"),
        pytest.param({"https://reg.example": {"auth": b64("bob:x")}}, "reg.example",
                     Credentials("bob", "x"), id="https-key"),
        pytest.param({"http://reg.example": {"auth": b64("bob:x")}}, "reg.example",
                     Credentials("bob", "x"), id="http-key"),
        pytest.param({"https://index.docker.io/v1/": {"auth": b64("hub:tok")}},
                     "index.docker.io", Credentials("hub", "tok"), id="v1-key"),
        pytest.param({"reg.example": {"username": "carol", "password": "pw"}}, "reg.example",
                     Credentials("carol", "pw"), id="username-password"),
        pytest.param({"reg.example": {"username": "carol"}}, "reg.example",
                     Credentials("carol", ""), id="username-without-password"),
        pytest.param({"reg.example": {"auth": "", "username": "dave", "password": "pw"}},
                     "reg.example", Credentials("dave", "pw"), id="empty-auth-falls-to-username"),
        pytest.param({"reg.example": {"auth": b64("bare:1")},
                      "https://reg.example": {"auth": b64("https:2")}},
                     "reg.example", Credentials("bare", "1"), id="bare-host-first"),
        pytest.param({"reg.example": {}, "https://reg.example": {"auth": b64("second:2")}},
                     "reg.example", Credentials("second", "2"), id="empty-entry-skipped"),
        pytest.param({"reg.example": {"identitytoken": "t"},
                      "https://reg.example": {"username": "u", "password": "p"}},
                     "reg.example", Credentials("u", "p"), id="entry-without-creds-skipped"),
        pytest.param({"reg.example": {"identitytoken": "t"}}, "reg.example", None,
                     id="no-usable-entry"),
        pytest.param({"other.example": {"auth": b64("x:y")}}, "reg.example", None,
                     id="other-host"),
        pytest.param({"reg.example:5000": {"auth": b64("x:y")}}, "reg.example", None,
                     id="port-must-match"),
        pytest.param({}, "reg.example", None, id="no-auths"),
    ],
)
def test_docker_config(
    tmp_path: Path, auths: dict[str, Any], host: str, expected: Credentials | None
) -> None:
    path = write_config(tmp_path / "docker" / "config.json", auths)
    assert credentials_for(host, RegistryConfig(docker_config=path)) == expected


def test_config_without_auths_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"credHelpers": {}}')
    assert credentials_for("reg.example", RegistryConfig(docker_config=path)) is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param({"username": "svc", "password": "from-settings"},
                     Credentials("svc", "from-settings"), id="settings-win"),
        pytest.param({"username": "svc"}, Credentials("svc", ""), id="settings-no-password"),
        pytest.param({"password": "ignored-without-user"}, Credentials("file", "pw"),
                     id="password-alone-falls-to-file"),
        pytest.param({}, Credentials("file", "pw"), id="file"),
    ],
)
def test_settings_before_docker_config(
    tmp_path: Path, config: dict[str, Any], expected: Credentials
) -> None:
    path = write_config(tmp_path / "config.json", {"reg.example": {"auth": b64("file:pw")}})
    registry = RegistryConfig(docker_config=path, **config)
    assert credentials_for("reg.example", registry) == expected


@pytest.mark.parametrize(
    ("where", "explicit"),
    [
        pytest.param("explicit", True, id="explicit-path"),
        pytest.param("env", False, id="DOCKER_CONFIG"),
        pytest.param("home", False, id="home-dot-docker"),
    ],
)
def test_where_the_config_is_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path, where: str, explicit: bool
) -> None:
    locations = {
        "explicit": tmp_path / "explicit" / "my.json",
        "env": tmp_path / "dockercfg" / "config.json",
        "home": home / ".docker" / "config.json",
    }
    path = write_config(locations[where], {"reg.example": {"auth": b64(f"{where}:pw")}})
    if where == "env":
        monkeypatch.setenv("DOCKER_CONFIG", str(path.parent))
    config = RegistryConfig(docker_config=path if explicit else None)
    assert docker_config_path(config.docker_config) == path
    assert credentials_for("reg.example", config) == Credentials(where, "pw")


def test_explicit_path_beats_docker_config_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "env"))
    assert docker_config_path(tmp_path / "x.json") == tmp_path / "x.json"
    assert docker_config_path(None) == tmp_path / "env" / "config.json"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: None, id="missing-file"),
        pytest.param(lambda p: p.mkdir(parents=True), id="a-directory"),
    ],
)
def test_no_config_file_means_anonymous(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "config.json"
    make(path)
    assert credentials_for("reg.example", RegistryConfig(docker_config=path)) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"{not json", "not valid JSON (JSONDecodeError); fix or remove it",
                     id="malformed-json"),
        pytest.param(b"", "not valid JSON (JSONDecodeError)", id="empty-file"),
        pytest.param(b'\xff\xfe{"auths": {}}', "not valid JSON (UnicodeDecodeError)",
                     id="not-utf8"),
        pytest.param(json.dumps({"auths": {"reg.example": {"auth": "%%%not-base64"}}}).encode(),
                     "the auth entry for reg.example is not base64 user:pass", id="bad-base64"),
        pytest.param(json.dumps({"auths": {"reg.example": {
            "auth": base64.b64encode(b"\xff\xfe:x").decode()}}}).encode(),
                     "the auth entry for reg.example is not base64 user:pass",
                     id="base64-not-utf8"),
    ],
)
def test_unreadable_config_is_invalid_input(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as info:
        credentials_for("reg.example", RegistryConfig(docker_config=path))
    assert str(info.value).startswith(f"read docker config {path}: ")
    assert message in str(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("[]", id="top-level-array"),
        pytest.param('{"auths": null}', id="null-auths"),
        pytest.param('{"auths": {"reg.example": "x"}}', id="entry-not-an-object"),
    ],
)
def test_wrong_shape_config_is_invalid_input(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(InvalidInput):
        credentials_for("reg.example", RegistryConfig(docker_config=path))


def test_docker_hub_credentials_are_found_for_docker_io(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.json",
                        {"https://index.docker.io/v1/": {"auth": b64("hub:tok")}})
    assert credentials_for("docker.io", RegistryConfig(docker_config=path)) == Credentials(
        "hub", "tok")


def test_credentials_repr_hides_the_password() -> None:
    creds = Credentials("alice", "s3cret-pw")
    for shown in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "s3cret-pw" not in shown
        assert "alice" in shown
    assert creds.password == "s3cret-pw"


def test_bad_auth_error_does_not_show_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    truncated = b64("u:s3cret-pass")[:-1]  # wrong padding
    path.write_text(json.dumps({"auths": {"reg.example": {"auth": truncated}}}))
    with pytest.raises(InvalidInput) as info:
        credentials_for("reg.example", RegistryConfig(docker_config=path))
    assert "s3cret" not in str(info.value)
    assert truncated not in str(info.value)


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        pytest.param('Bearer realm="https://auth.example/token",service="reg.example",'
                     'scope="repository:ml/model:pull,push"',
                     "bearer",
                     {"realm": "https://auth.example/token", "service": "reg.example",
                      "scope": "repository:ml/model:pull,push"},
                     id="bearer-full"),
        pytest.param('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"},
                     id="basic"),
        pytest.param('  BEARER realm="r"  ', "bearer", {"realm": "r"},
                     id="scheme-lowercased-and-trimmed"),
        pytest.param('Bearer realm="r", service="s"', "bearer", {"realm": "r", "service": "s"},
                     id="space-after-comma"),
        pytest.param('Bearer realm=""', "bearer", {"realm": ""}, id="empty-value"),
        pytest.param('Bearer scope="a:b:pull scope2"', "bearer", {"scope": "a:b:pull scope2"},
                     id="space-inside-quotes"),
        pytest.param("Basic", "basic", {}, id="scheme-only"),
        pytest.param("", "", {}, id="empty"),
        pytest.param('Bearer realm="a",realm="b"', "bearer", {"realm": "b"}, id="last-wins"),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    assert parse_challenge(header) == (scheme, params)
