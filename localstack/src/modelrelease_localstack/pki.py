"""A per-stack certificate authority and the certificates it signs (cryptography, EC P-256).

Shared by the control plane (serving, client and service-account keys) and the TLS
registry of the local stack.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelrelease.errors import StackError


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


def write_public(path: Path, data: bytes) -> None:
    """Write ``data`` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise StackError(f"load key {path}: not an EC private key")
    return key


class Pki:
    """A per-stack certificate authority and the certificates signed by it.

    Files live in ``<workdir>/pki``; an existing CA is reused so a restarted stack over the same
    etcd data keeps trusting its own tokens and certificates.

    Args:
        directory: Holds ``ca.crt``, ``ca.key`` and every issued pair.
        ca_name: The CA's subject CN when it is created (a second CA in its own directory,
            such as the API server's front-proxy CA, gets a name of its own).
    """

    def __init__(self, directory: Path, *, ca_name: str = "modelrelease-local-ca") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.ca = KeyPair(self.dir / "ca.crt", self.dir / "ca.key")
        if self.ca.cert.exists() and self.ca.key.exists():
            self._ca_key = _load_key(self.ca.key)
            self._ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        else:
            self._ca_key = _new_key()
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
            now = dt.datetime.now(dt.UTC)
            self._ca_cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(self._ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()),
                    critical=False,
                )
                .sign(self._ca_key, hashes.SHA256())
            )
            write_private(self.ca.key, _key_pem(self._ca_key))
            write_public(self.ca.cert, self._ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        organizations: list[str] | None = None,
        server: bool = False,
        dns_names: list[str] | None = None,
        ips: list[str] | None = None,
    ) -> KeyPair:
        """Issue a leaf certificate (client, or server when ``server``) signed by the CA.

        Args:
            stem: File name stem under the PKI dir (``<stem>.crt``, ``<stem>.key``).
            common_name: Subject CN (the Kubernetes user name for client certs).
            organizations: Subject O values (the Kubernetes groups for client certs).
            server: Issue a serving certificate instead of a client certificate.
            dns_names: DNS subject alternative names (server certs).
            ips: IP subject alternative names (server certs).

        Returns:
            The paths of the written certificate and key.
        """
        key = _new_key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations or []]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                critical=False,
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names or []]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        pair = KeyPair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        write_private(pair.key, _key_pem(key))
        write_public(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def service_account_keys(self) -> tuple[Path, Path]:
        """Return (private, public) service-account signing key paths, creating them once."""
        private, public = self.dir / "sa.key", self.dir / "sa.pub"
        if not (private.exists() and public.exists()):
            key = _new_key()
            write_private(private, _key_pem(key))
            write_public(
                public,
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )
        return private, public
