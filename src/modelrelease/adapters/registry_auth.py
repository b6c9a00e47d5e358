"""Credentials and authentication for OCI registries: anonymous, basic and bearer tokens.

Bearer tokens follow the distribution spec: a 401 with ``WWW-Authenticate: Bearer
realm=...,service=...,scope=...`` sends us to the realm for a token, with basic
credentials when we have them. Credentials come from settings or a docker
``config.json`` and never appear in logs or errors.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelrelease.errors import InvalidInput
from modelrelease.settings import RegistryConfig

DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH = re.compile(r"^/v2/(?P<repo>.+?)/(?:blobs|manifests|tags)/")


@dataclass(frozen=True)
class Credentials:
    """A user name and password for one registry host."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='**********')"


def docker_config_path(explicit: Path | None) -> Path:
    """The docker config.json to read: explicit, ``$DOCKER_CONFIG``, or ``~/.docker``."""
    if explicit is not None:
        return explicit
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def credentials_for(host: str, config: RegistryConfig) -> Credentials | None:
    """Credentials for ``host``: settings first, then the docker config file.

    Raises:
        InvalidInput: the docker config file exists but cannot be read.
    """
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else ""
        return Credentials(config.username, password)
    path = docker_config_path(config.docker_config)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"read docker config {path}: not valid JSON ({type(exc).__name__}); fix or remove it"
        ) from exc
    if not isinstance(document, dict):
        raise InvalidInput(f"read docker config {path}: not a JSON object; fix or remove it")
    if "auths" not in document:
        return None
    auths = document["auths"]
    if not isinstance(auths, dict):
        raise InvalidInput(f"read docker config {path}: 'auths' is not an object; fix or remove it")
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/"]
    if host in DOCKER_HUB_HOSTS:
        keys += ["https://index.docker.io/v1/", "index.docker.io"]
    for key in keys:
        entry = auths.get(key)
        if not entry:
            continue
        if not isinstance(entry, dict):
            raise InvalidInput(
                f"read docker config {path}: the entry for {key} is not an object; fix it")
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidInput(
                    f"read docker config {path}: the auth entry for {host} is not base64 user:pass"
                ) from exc
            return Credentials(user, password)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``WWW-Authenticate`` into its scheme (lowercase) and parameters."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class RegistryAuth(httpx.Auth):
    """An httpx auth flow that answers registry challenges and re-uses what it learnt.

    Basic credentials, once a host asked for them, and bearer tokens, per host and
    repository, are sent up front on later requests, so large uploads are not sent
    twice.
    """

    def __init__(self, config: RegistryConfig) -> None:
        self._config = config
        self._basic: set[str] = set()
        self._tokens: dict[tuple[str, str], str] = {}
        self.refused: set[str] = set()

    @staticmethod
    def _repo(request: httpx.Request) -> str:
        match = _REPO_PATH.match(request.url.path)
        return match.group("repo") if match else ""

    def _apply(self, request: httpx.Request) -> None:
        host = request.url.netloc.decode()
        token = self._tokens.get((host, self._repo(request)))
        creds = credentials_for(host, self._config)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        elif host in self._basic and creds is not None:
            raw = f"{creds.username}:{creds.password}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send; on a 401 challenge, authenticate once and send again."""
        self._apply(request)
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        host = request.url.netloc.decode()
        creds = credentials_for(host, self._config)
        if scheme == "basic":
            if creds is None or host in self._basic:
                return  # nothing (new) to offer: the caller reports the 401
            self._basic.add(host)
        elif scheme == "bearer" and "realm" in params:
            query: list[tuple[str, str | int | float | bool | None]] = []
            if params.get("service"):
                query.append(("service", params["service"]))
            for scope in params.get("scope", "").split():
                query.append(("scope", scope))
            token_request = httpx.Request("GET", params["realm"], params=query)
            if creds is not None:
                raw = f"{creds.username}:{creds.password}".encode()
                token_request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            token_response = yield token_request
            if token_response.status_code != 200:
                self.refused.add(host)
                return
            token_response.read()
            body = token_response.json()
            token = body.get("token") or body.get("access_token")
            if not token:
                return
            self._tokens[(host, self._repo(request))] = str(token)
        else:
            return
        self._apply(request)
        yield request
