"""An OCI distribution client over httpx: read manifests, check, mount, upload and tag blobs.

Pushes go blobs, then config, then manifest (by digest), then tags; a blob the
registry already has is never sent again (HEAD), one held by another repository on
the same registry is mounted, and uploads resume after 429/5xx or a dropped
connection. Plain http is used only for loopback hosts or ones listed in
``RegistryConfig.insecure_registries``.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import certifi
import httpx

from modelrelease.adapters.registry_auth import RegistryAuth
from modelrelease.adapters.retry import backoff_delay, retrying
from modelrelease.domain.image import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    BaseImage,
    Blob,
    Descriptor,
    sha256_digest,
)
from modelrelease.domain.reference import ImageRef, is_loopback
from modelrelease.errors import (
    ImageNotFound,
    InvalidInput,
    RegistryAuthError,
    RegistryError,
)
from modelrelease.settings import RegistryConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
_MONOLITHIC_MAX = 4 * 1024 * 1024
_READ = 1024 * 1024

BlobSource = Path | bytes | Callable[[int], Iterator[bytes]]
"""A blob's bytes: a file, memory, or a function giving them from an offset on."""


def _chunks(source: BlobSource, offset: int) -> Iterator[bytes]:
    """The blob's bytes from ``offset`` on."""
    if isinstance(source, bytes):
        for start in range(offset, len(source), _READ):
            yield source[start:start + _READ]
    elif isinstance(source, Path):
        with source.open("rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(_READ):
                yield chunk
    else:
        yield from source(offset)


def _limited(chunks: Iterator[bytes], length: int) -> Iterator[bytes]:
    """At most ``length`` bytes of ``chunks``."""
    for chunk in chunks:
        if length <= 0:
            return
        piece = chunk[:length]
        length -= len(piece)
        yield piece


def _is_cert_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class PushStats:
    """What a push did: bytes actually sent and how each blob got there."""

    bytes_uploaded: int = 0
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)


class RegistryClient:
    """A client for one or more OCI registries.

    Args:
        config: Credentials, TLS and retry settings.
        transport: An httpx transport to send through (tests wrap the real one to
            inject 503s and dropped connections at this seam).
        progress: Called with a short line for each blob pushed or skipped.
    """

    def __init__(
        self,
        config: RegistryConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.auth = RegistryAuth(config)
        verify: ssl.SSLContext = ssl.create_default_context(cafile=certifi.where())
        if config.ca_file is not None:
            try:
                verify.load_verify_locations(cafile=str(config.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise InvalidInput(
                    f"load registry CA {config.ca_file}: {exc}; point "
                    "MODELRELEASE_REGISTRY__CA_FILE at a PEM bundle"
                ) from exc
        self._http = httpx.Client(
            auth=self.auth,
            verify=verify,
            transport=transport,
            timeout=httpx.Timeout(config.timeout_s, connect=10.0),
            follow_redirects=True,
        )
        self._schemes: dict[str, str] = {}
        self._progress = progress or (lambda line: None)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _base(self, registry: str) -> str:
        """``scheme://host`` for ``registry``: https, or plain http where allowed."""
        if registry in self._schemes:
            return f"{self._schemes[registry]}://{registry}"
        plain_ok = is_loopback(registry) or registry in self.config.insecure_registries
        try:
            self._http.get(f"https://{registry}/v2/", auth=None)
            scheme = "https"
        except httpx.TransportError as exc:
            if _is_cert_error(exc):
                raise RegistryError(
                    f"connect registry {registry}: TLS certificate not trusted ({exc}); "
                    "set MODELRELEASE_REGISTRY__CA_FILE to the CA bundle that signed it"
                ) from exc
            if not plain_ok:
                raise RegistryError(
                    f"connect registry {registry}: https failed ({type(exc).__name__}: {exc}); "
                    "plain http is only used for loopback or hosts in "
                    "MODELRELEASE_REGISTRY__INSECURE_REGISTRIES",
                    status=0,
                ) from exc
            scheme = "http"
        self._schemes[registry] = scheme
        return f"{scheme}://{registry}"

    def _url(self, ref: ImageRef, tail: str) -> str:
        return f"{self._base(ref.registry)}/v2/{ref.repository}/{tail}"

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call``, retrying retriable registry errors with exponential back-off."""
        return retrying(what, call, retry_on=RegistryError, retries=self.config.retries,
                        backoff_s=self.config.backoff_s)

    def _request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        ok: tuple[int, ...],
        headers: Mapping[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One HTTP call; maps failures to ``RegistryError`` (no retry here)."""
        start = time.monotonic()
        try:
            request = self._http.build_request(method, url, headers=headers, content=content)
            response = self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise RegistryError(f"{what}: {type(exc).__name__}: {exc}", status=0) from exc
        log.debug("%s %s -> %d (%.0f ms)", method, url.split("?")[0], response.status_code,
                  (time.monotonic() - start) * 1000)
        if response.status_code in ok:
            return response
        if stream:
            response.read()
        raise self._error(what, response)

    def _error(self, what: str, response: httpx.Response) -> RegistryError:
        code, detail = "", ""
        try:
            errors = response.json().get("errors") or []
            if errors:
                code = str(errors[0].get("code", ""))
                detail = str(errors[0].get("message", ""))
        except ValueError:
            detail = response.text[:200]
        status = response.status_code
        cause = f"{status} {code} {detail}".strip()
        if status in (401, 403):
            host = response.request.url.netloc.decode()
            return RegistryAuthError(
                f"{what}: {cause}: check the registry credentials for {host} "
                "(MODELRELEASE_REGISTRY__USERNAME/PASSWORD or docker config.json)",
                status=status, code=code,
            )
        if status == 404:
            return ImageNotFound(f"{what}: {cause}", status=status, code=code)
        return RegistryError(f"{what}: {cause}", status=status, code=code)

    # -- reading ----------------------------------------------------------------------------

    def get_manifest(self, ref: ImageRef) -> tuple[str, str, bytes]:
        """Fetch a manifest or index: (digest, media type, raw bytes).

        Raises:
            ImageNotFound: no such repository, tag or digest.
        """
        what = f"get manifest {ref}"

        def call() -> httpx.Response:
            return self._request("GET", self._url(ref, f"manifests/{ref.reference}"), what,
                                 ok=(200,), headers={"Accept": _ACCEPT})

        response = self._retrying(what, call)
        data = response.content
        digest = sha256_digest(data)
        if ref.digest and ref.digest != digest:
            raise RegistryError(f"{what}: content digest {digest} does not match the reference",
                                retriable=False)
        media_type = response.headers.get("content-type", "").split(";")[0]
        return digest, media_type, data

    def read_image(
        self, ref: ImageRef, platform: tuple[str, str] = ("linux", "amd64")
    ) -> BaseImage:
        """Read an image's manifest and config (not its layers), pinned by digest.

        An index is resolved to the manifest for ``platform``.
        """
        import json

        digest, media_type, data = self.get_manifest(ref)
        manifest: dict[str, Any] = json.loads(data)
        media_type = manifest.get("mediaType", media_type)
        if media_type in INDEX_TYPES:
            os_name, arch = platform
            for entry in manifest.get("manifests", []):
                plat = entry.get("platform") or {}
                if plat.get("os") == os_name and plat.get("architecture") == arch:
                    return self.read_image(ref.with_digest(entry["digest"]), platform)
            raise ImageNotFound(f"read image {ref}: the index has no {os_name}/{arch} manifest",
                                status=404, code="MANIFEST_UNKNOWN")
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"read image {ref}: unsupported manifest type {media_type!r}",
                                retriable=False)
        config_desc = Descriptor.from_json(manifest["config"])
        config = json.loads(self.get_blob_bytes(ref, config_desc.digest))
        return BaseImage(digest=digest, manifest=manifest, config=config)

    def get_blob_bytes(self, ref: ImageRef, digest: str) -> bytes:
        """A (small) blob's bytes, checked against its digest."""
        what = f"get blob {ref.registry}/{ref.repository}@{digest}"
        data = self._retrying(what, lambda: self._request(
            "GET", self._url(ref, f"blobs/{digest}"), what, ok=(200,))).content
        if sha256_digest(data) != digest:
            raise RegistryError(f"{what}: content does not match its digest")
        return data

    def download_blob(self, ref: ImageRef, digest: str, dest: Path) -> None:
        """Stream a blob into ``dest`` (atomically), checking its digest."""
        import hashlib

        what = f"get blob {ref.registry}/{ref.repository}@{digest}"

        def call() -> None:
            response = self._request("GET", self._url(ref, f"blobs/{digest}"), what, ok=(200,),
                                     stream=True)
            tmp = dest.with_name(dest.name + ".partial")
            hasher = hashlib.sha256()
            try:
                with tmp.open("wb") as out:
                    for chunk in response.iter_bytes(1024 * 1024):
                        hasher.update(chunk)
                        out.write(chunk)
            except httpx.TransportError as exc:
                tmp.unlink(missing_ok=True)
                raise RegistryError(f"{what}: {type(exc).__name__}: {exc}") from exc
            finally:
                response.close()
            if "sha256:" + hasher.hexdigest() != digest:
                tmp.unlink(missing_ok=True)
                raise RegistryError(f"{what}: content does not match its digest")
            tmp.replace(dest)

        self._retrying(what, call)

    def blob_exists(self, ref: ImageRef, digest: str) -> bool:
        """Whether the repository already holds the blob (HEAD)."""
        what = f"check blob {ref.registry}/{ref.repository}@{digest}"
        try:
            self._retrying(what, lambda: self._request(
                "HEAD", self._url(ref, f"blobs/{digest}"), what, ok=(200,)))
        except ImageNotFound:
            return False
        return True

    def list_tags(self, ref: ImageRef) -> list[str]:
        """The repository's tags (empty if the repository does not exist)."""
        what = f"list tags {ref.registry}/{ref.repository}"
        try:
            response = self._retrying(what, lambda: self._request(
                "GET", self._url(ref, "tags/list"), what, ok=(200,)))
        except ImageNotFound:
            return []
        return sorted(response.json().get("tags") or [])

    # -- writing ----------------------------------------------------------------------------

    def mount_blob(self, ref: ImageRef, digest: str, from_repository: str) -> bool:
        """Mount a blob from another repository of the same registry; False if it cannot."""
        what = f"mount blob {digest} into {ref.registry}/{ref.repository}"
        url = self._url(ref, f"blobs/uploads/?mount={digest}&from={from_repository}")
        response = self._retrying(what, lambda: self._request("POST", url, what, ok=(201, 202)))
        if response.status_code == 201:
            return True
        # 202: the registry started an ordinary upload instead; abandon it.
        location = response.headers.get("location")
        if location:
            with contextlib.suppress(RegistryError):
                self._request("DELETE", urljoin(url, location), what, ok=(204, 404))
        return False

    def _start_upload(self, ref: ImageRef, what: str) -> str:
        url = self._url(ref, "blobs/uploads/")
        response = self._request("POST", url, what, ok=(202,))
        return urljoin(url, response.headers["location"])

    def _upload_offset(self, location: str, what: str) -> int | None:
        """Where an interrupted upload stands (bytes received), or None if it is gone."""
        try:
            response = self._request("GET", location, what, ok=(204,))
        except ImageNotFound:
            return None
        rng = response.headers.get("range", "")
        return int(rng.split("-")[1]) + 1 if "-" in rng else 0

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        # httpx `params=` would drop the upload's `_state`: append by hand.
        return f"{location}{'&' if '?' in location else '?'}digest={digest}"

    def upload_blob(self, ref: ImageRef, descriptor: Descriptor, source: BlobSource) -> int:
        """Upload one blob: small in-memory ones in one PUT, others streamed and resumable.

        A streamed upload sends the blob in one PATCH (or in ``chunk_size`` pieces when
        set). After a 429/5xx or a dropped connection it asks the registry how much it
        holds and resumes from there, up to ``retries`` times in a row.

        Returns:
            Bytes the registry accepted (resent bytes count again).
        """
        what = f"upload blob {descriptor.digest} to {ref.registry}/{ref.repository}"
        size = descriptor.size
        if isinstance(source, bytes) and size <= _MONOLITHIC_MAX:
            def monolithic() -> int:
                location = self._start_upload(ref, what)
                self._request("PUT", self._with_digest(location, descriptor.digest), what,
                              ok=(201,), content=source,
                              headers={"Content-Type": "application/octet-stream"})
                return size
            return self._retrying(what, monolithic)

        sent = 0
        location = self._retrying(what, lambda: self._start_upload(ref, what))
        offset, failures = 0, 0
        while offset < size:
            end = min(size, offset + self.config.chunk_size) if self.config.chunk_size else size
            try:
                response = self._request(
                    "PATCH", location, what, ok=(202,),
                    content=_limited(_chunks(source, offset), end - offset),
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{end - 1}",
                             "Content-Length": str(end - offset)})
                sent += end - offset
                location = urljoin(location, response.headers["location"])
                rng = response.headers.get("range", "")
                offset = int(rng.split("-")[1]) + 1 if "-" in rng else end
                failures = 0
            except RegistryError as exc:
                if not exc.retriable or failures >= self.config.retries:
                    raise
                delay = backoff_delay(failures, self.config.backoff_s)
                failures += 1
                log.info("%s: %s at byte %d; resuming in %.1fs", what, exc.message, offset, delay)
                time.sleep(delay)
                resumed = self._retrying(
                    what, lambda at=location: self._upload_offset(at, what))  # type: ignore[misc]
                if resumed is None:
                    location = self._retrying(what, lambda: self._start_upload(ref, what))
                    offset = 0
                else:
                    sent += max(0, resumed - offset)
                    offset = resumed
        self._retrying(what, lambda: self._request(
            "PUT", self._with_digest(location, descriptor.digest), what, ok=(201,),
            headers={"Content-Length": "0"}))
        return sent

    def put_manifest(self, ref: ImageRef, reference: str, manifest: Blob) -> str:
        """Put a manifest under a digest or tag; return its digest."""
        what = f"put manifest {ref.registry}/{ref.repository}:{reference}"
        self._retrying(what, lambda: self._request(
            "PUT", self._url(ref, f"manifests/{reference}"), what, ok=(201,),
            content=manifest.data, headers={"Content-Type": manifest.media_type}))
        return manifest.digest

    def manifest_exists(self, ref: ImageRef, reference: str) -> bool:
        """Whether a manifest is present under a digest or tag (HEAD)."""
        what = f"check manifest {ref.registry}/{ref.repository}:{reference}"
        try:
            self._retrying(what, lambda: self._request(
                "HEAD", self._url(ref, f"manifests/{reference}"), what, ok=(200,),
                headers={"Accept": _ACCEPT}))
        except ImageNotFound:
            return False
        return True

    def delete_manifest(self, ref: ImageRef, digest: str) -> None:
        """Delete a manifest by digest (the registry must allow deletion)."""
        what = f"delete manifest {ref.registry}/{ref.repository}@{digest}"
        self._retrying(what, lambda: self._request(
            "DELETE", self._url(ref, f"manifests/{digest}"), what, ok=(202,)))

    def push_image(
        self,
        target: ImageRef,
        base_ref: ImageRef,
        base: BaseImage,
        layers: list[tuple[Descriptor, BlobSource]],
        config: Blob,
        manifest: Blob,
        tags: list[str],
    ) -> tuple[str, PushStats]:
        """Push an image built on ``base``: blobs, config, manifest by digest, then tags.

        Base layers are never pulled: skipped if present, mounted from the base's
        repository on the same registry, or copied blob by blob from another registry.
        Nothing is tagged unless every blob and the manifest are in place.

        Returns:
            The manifest digest and what was uploaded, mounted or skipped.
        """
        stats = PushStats()
        for desc in base.layers:
            if self.blob_exists(target, desc.digest):
                stats.skipped.append(desc.digest)
            elif base_ref.registry == target.registry and self.mount_blob(
                    target, desc.digest, base_ref.repository):
                stats.mounted.append(desc.digest)
                self._progress(f"mounted base layer {desc.digest[:19]} from {base_ref.repository}")
            else:
                self._copy_blob(base_ref, target, desc, stats)
        for desc, path in [*layers, (config.descriptor, None)]:
            if self.blob_exists(target, desc.digest):
                stats.skipped.append(desc.digest)
                self._progress(f"layer {desc.digest[:19]} already present ({desc.size} bytes)")
                continue
            source: BlobSource = config.data if path is None else path
            start = time.monotonic()
            stats.bytes_uploaded += self.upload_blob(target, desc, source)
            stats.uploaded.append(desc.digest)
            self._progress(f"pushed {desc.digest[:19]} ({desc.size / 1e6:.1f} MB in "
                           f"{time.monotonic() - start:.1f}s)")
        digest = self.put_manifest(target, manifest.digest, manifest)
        for tag in tags:
            self.put_manifest(target, tag, manifest)
        return digest, stats

    def _copy_blob(self, src: ImageRef, dst: ImageRef, desc: Descriptor, stats: PushStats) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="blob-") as tmp:
            path = Path(tmp) / "blob"
            self.download_blob(src, desc.digest, path)
            stats.bytes_uploaded += self.upload_blob(dst, desc, path)
            stats.uploaded.append(desc.digest)
