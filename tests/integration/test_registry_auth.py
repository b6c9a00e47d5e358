"""Bearer-token auth (distribution token protocol) against Debian's docker-registry."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.base import build_dev_base
from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import RegistryAuthError, RegistryError
from modelrelease.settings import RegistryConfig
from modelrelease_localstack.pki import Pki
from modelrelease_localstack.registry import LocalRegistry
from modelrelease_localstack.token_server import TokenIssuer
from tests.support import Services

pytestmark = pytest.mark.integration
USER, PASSWORD = "token-user", "t0ken-pa55"


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry,
                                                                              TokenIssuer]]:
    root = tmp_path_factory.mktemp("token-registry")
    pki = Pki(root / "pki")
    issuer = TokenIssuer(pki, {USER: PASSWORD})
    issuer.start()
    registry = LocalRegistry(root, tls=True, pki=pki, token=issuer)
    registry.start()
    try:
        yield registry, issuer
    finally:
        registry.stop()
        issuer.stop()


def test_anonymous_request_gets_a_bearer_challenge(
        token_registry: tuple[LocalRegistry, TokenIssuer]) -> None:
    registry, issuer = token_registry
    ctx = ssl.create_default_context(cafile=str(registry.ca_cert))
    response = httpx.get(f"{registry.url}/v2/ml/x/tags/list", verify=ctx)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(f'Bearer realm="{issuer.realm}"')


def test_build_and_push_with_bearer_tokens(
        services: Services, token_registry: tuple[LocalRegistry, TokenIssuer],
        tmp_path: Path) -> None:
    registry, issuer = token_registry
    config = RegistryConfig(username=USER, password=PASSWORD,  # type: ignore[arg-type]
                            ca_file=registry.ca_cert)
    with RegistryClient(config) as client:
        base_digest, _ = build_dev_base(f"{registry.host}/ml/base:dev", client, tmp_path / "c")
    before = issuer.issued
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "weights.bin").write_bytes(b"\x01" * 4096)
    settings = services.settings(tmp_path / "cache", username=USER, password=PASSWORD,
                                 ca_file=registry.ca_cert)
    result = ImageBuilder(settings).build(BuildRequest(
        model=str(model), base=f"{registry.host}/ml/base@{base_digest}",
        to=f"{registry.host}/ml/tokened:1"))
    assert issuer.issued > before  # tokens were really fetched and used
    assert result.stats.mounted  # the cross-repository mount was authorised too
    with RegistryClient(config) as client:
        assert client.list_tags(ImageRef.parse(f"{registry.host}/ml/tokened")) == ["1"]


def test_wrong_password_gets_no_token(
        token_registry: tuple[LocalRegistry, TokenIssuer]) -> None:
    registry, _ = token_registry
    config = RegistryConfig(username=USER, password="wrong-one",  # type: ignore[arg-type]
                            ca_file=registry.ca_cert)
    with RegistryClient(config) as client, pytest.raises(RegistryAuthError, match="401"):
        client.list_tags(ImageRef.parse(f"{registry.host}/ml/tokened"))


def test_plain_http_is_refused_for_non_loopback_hosts() -> None:
    """Only the transport is faked: no non-loopback host may be contacted from here."""
    seen: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        raise httpx.ConnectError("connection refused", request=request)

    client = RegistryClient(RegistryConfig(retries=0), transport=httpx.MockTransport(refuse))
    with client, pytest.raises(RegistryError, match="INSECURE_REGISTRIES"):
        client.list_tags(ImageRef.parse("registry.example.internal:5000/ml/x"))
    assert seen and all(url.startswith("https://") for url in seen)
