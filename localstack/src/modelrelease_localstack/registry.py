"""Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1, with our own config.

Plain http by default; with ``tls=True`` it serves a certificate from the stack's CA,
and with ``users`` it requires bcrypt basic auth (htpasswd written with ``htpasswd -B``).
Deletion is enabled so tests and drills can clean up.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from modelrelease.errors import StackError
from modelrelease_localstack.pki import Pki
from modelrelease_localstack.process import Service, free_ports
from modelrelease_localstack.token_server import ISSUER, SERVICE, TokenIssuer

BINARY_CANDIDATES = ("docker-registry", "/usr/bin/docker-registry", "registry")


def registry_binary() -> str:
    """The registry binary; a clear error telling how to install it when missing."""
    for name in BINARY_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise StackError(
        "find docker-registry: not installed; run `scripts/bootstrap` "
        "(or `apt-get install docker-registry`)"
    )


class LocalRegistry:
    """One registry process with its storage, config and (optionally) TLS and users.

    Args:
        workdir: Holds ``config.yml``, storage, htpasswd, certificates and the log.
        tls: Serve https with a certificate for 127.0.0.1/localhost.
        users: user -> password pairs for bcrypt basic auth (None: anonymous).
        token: A started token issuer: bearer-token auth instead of basic.
        detached: Let the registry outlive this Python process.
        pki: The CA to sign with (a new one under ``workdir/pki`` by default).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool = False,
        users: Mapping[str, str] | None = None,
        pki: Pki | None = None,
        port: int | None = None,
        token: TokenIssuer | None = None,
        detached: bool = False,
    ) -> None:
        self.workdir = workdir
        self.detached = detached
        self.tls = tls
        self.users = dict(users or {})
        self.port = port or free_ports(1)[0]
        self._pki = pki
        self.token = token
        self.ca_cert: Path | None = None
        self.service: Service | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log: {level: info, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.workdir / 'storage'}}}",
            "  delete: {enabled: true}",
            "  maintenance: {uploadpurging: {enabled: false}}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: modelrelease-local-registry",
        ]
        if self.tls:
            pki = self._pki or Pki(self.workdir / "pki")
            pair = pki.issue(
                "registry", "127.0.0.1", server=True, dns_names=["localhost"], ips=["127.0.0.1"]
            )
            self.ca_cert = pki.ca.cert
            lines.append(f"  tls: {{certificate: {pair.cert}, key: {pair.key}}}")
        if self.token is not None:
            lines += ["auth:", "  token:", f"    realm: {self.token.realm}",
                      f"    service: {SERVICE}", f"    issuer: {ISSUER}",
                      f"    rootcertbundle: {self.token.root_bundle}"]
        elif self.users:
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text("")
            for user, password in self.users.items():
                try:
                    line = subprocess.run(
                        ["htpasswd", "-nbB", user, password],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout.strip()
                except (OSError, subprocess.CalledProcessError) as exc:
                    raise StackError(
                        "write registry htpasswd: `htpasswd` failed; install "
                        "apache2-utils (scripts/bootstrap does)"
                    ) from exc
                with htpasswd.open("a") as fh:
                    fh.write(line + "\n")
            lines += ["auth:", f"  htpasswd: {{realm: modelrelease, path: {htpasswd}}}"]
        return "\n".join(lines) + "\n"

    def _ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_cert)) if self.tls else None
        try:
            urllib.request.urlopen(f"{self.url}/v2/", timeout=1, context=context)
        except urllib.error.HTTPError as exc:  # 401 means it is up and asking for auth
            return exc.code == 401
        return True

    def start(self, timeout: float = 20) -> None:
        """Write the config and start the registry; wait until ``/v2/`` answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(self._config())
        self.service = Service("registry", [registry_binary(), "serve", str(config)],
                               self.workdir, detached=self.detached)
        self.service.start()
        self.service.wait_ready(self._ready, timeout, "serving /v2/")

    def stop(self) -> None:
        """Stop the registry process (its storage stays)."""
        if self.service is not None:
            self.service.stop()

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
