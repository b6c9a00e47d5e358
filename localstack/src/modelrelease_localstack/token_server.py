"""A bearer-token issuer for the local registry (the distribution token-auth protocol).

The registry answers ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,
scope=...``; clients fetch a token here with basic credentials, and the registry checks
the token's ES256 signature against the stack's CA (``rootcertbundle``). The issuer
grants every requested action to known users and refuses unknown ones, which is all
the local stack and the tests need from a real auth server.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from modelrelease_localstack.pki import Pki

SERVICE = "modelrelease-registry"
ISSUER = "modelrelease-token-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """Issues registry tokens signed by a key certified by ``pki``'s CA.

    Args:
        pki: The CA the registry trusts (its cert is the registry's rootcertbundle).
        users: user -> password pairs allowed to get tokens.
    """

    def __init__(self, pki: Pki, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        pair = pki.issue("token-signer", ISSUER)
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._key = key
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.root_bundle: Path = pki.ca.cert
        self._server: ThreadingHTTPServer | None = None
        self.issued = 0

    def token(self, user: str, scopes: list[str], service: str) -> str:
        """A signed JWT granting ``scopes`` (``repository:NAME:ACTIONS``) to ``user``."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {"iss": ISSUER, "sub": user, "aud": service, "exp": now + 300,
                  "nbf": now - 30, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        self.issued += 1
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    @property
    def realm(self) -> str:
        """The token endpoint URL."""
        assert self._server is not None, "start() the issuer first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self) -> None:
        """Serve ``/token`` on a free loopback port, in a daemon thread."""
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                user = issuer._basic_user(self.headers.get("Authorization", ""))
                if url.path != "/token" or user is None:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="modelrelease-token"')
                    self.end_headers()
                    return
                token = issuer.token(user, query.get("scope", []),
                                     query.get("service", [SERVICE])[0])
                body = json.dumps({"token": token, "access_token": token,
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="token-issuer").start()

    def _basic_user(self, header: str) -> str | None:
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            return None
        return user

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
