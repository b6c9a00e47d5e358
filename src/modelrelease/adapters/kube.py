"""Kubernetes: server-side apply, reads, deletes, status, events and Lease locks.

Every ``ApiException`` becomes a ``KubeApiError`` naming the verb, the object and the
cause (429 and 5xx are retriable). Objects are plain dicts (the API's JSON), applied
with server-side apply under the field manager ``modelrelease``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from modelrelease.adapters.retry import retrying
from modelrelease.errors import KubeApiError
from modelrelease.settings import KubeConfig

log = logging.getLogger(__name__)
FIELD_MANAGER = "modelrelease"
T = TypeVar("T")


def _describe(kind: str, namespace: str | None, name: str | None) -> str:
    where = f"{namespace}/{name}" if namespace else str(name)
    return f"{kind.lower()} {where}"


class KubeCluster:
    """One cluster, reached through a kubeconfig (or in-cluster config).

    Args:
        config: Which kubeconfig and context; None fields use the usual defaults.
    """

    def __init__(self, config: KubeConfig) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.dynamic import DynamicClient

        try:
            if config.kubeconfig is None and Path(
                    "/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
                kube_config.load_incluster_config()
                self._api = client.ApiClient()
            else:
                self._api = kube_config.new_client_from_config(
                    config_file=str(config.kubeconfig) if config.kubeconfig else None,
                    context=config.context)
        except (ConfigException, OSError, TypeError) as exc:
            context = (f", or MODELRELEASE_KUBE__CONTEXT to one of its contexts (now "
                       f"{config.context!r})" if config.context else "")
            raise KubeApiError(
                f"load kubeconfig {config.kubeconfig or '~/.kube/config'}: {exc}; set "
                f"KUBECONFIG or MODELRELEASE_KUBE__KUBECONFIG to a valid file{context}") from exc
        self.config = config
        self.core = client.CoreV1Api(self._api)
        self.apps = client.AppsV1Api(self._api)
        self.coordination = client.CoordinationV1Api(self._api)
        self._dynamic_factory: Callable[[], Any] = lambda: DynamicClient(self._api)
        self._dynamic: Any = None

    def close(self) -> None:
        """Close the connection pool."""
        self._api.close()

    @property
    def dynamic(self) -> Any:
        """The dynamic client (discovery on first use)."""
        if self._dynamic is None:
            self._dynamic = self._call("discover API resources", self._dynamic_factory)
        return self._dynamic

    def _maybe(self, what: str, fn: Callable[[], T]) -> T | None:
        """Like ``_call``, but None when the object does not exist (404)."""
        try:
            return self._call(what, fn)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``_once``, retried with exponential back-off while the error is retriable.

        An API server restarting (refused connections, then 503 until ready) is waited
        out for ``KubeConfig.retries`` tries; then the last error is raised.
        """
        return retrying(what, lambda: self._once(what, fn), retry_on=KubeApiError,
                        retries=self.config.retries, backoff_s=self.config.backoff_s,
                        backoff_max_s=self.config.backoff_max_s)

    def _once(self, what: str, fn: Callable[[], T]) -> T:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import DynamicApiError
        from urllib3.exceptions import HTTPError

        start = time.monotonic()
        try:
            result = fn()
        except (ApiException, DynamicApiError) as exc:
            status = int(getattr(exc, "status", 0) or 0)
            reason = getattr(exc, "reason", "") or ""
            body = getattr(exc, "body", "") or ""
            message = reason
            try:
                import json

                message = json.loads(body).get("message", reason)
            except (ValueError, TypeError, AttributeError):
                pass
            hint = ("; grant it in the pipeline's Role (deployments/kubernetes/rbac.yaml)"
                    if status == 403 else "")
            raise KubeApiError(f"{what}: {status} {message}{hint}", status=status,
                               retriable=status == 429 or status >= 500) from exc
        except (HTTPError, OSError) as exc:
            raise KubeApiError(
                f"{what}: API server {self._api.configuration.host} unreachable ({exc}); is "
                "the cluster up, and does the kubeconfig (MODELRELEASE_KUBE__KUBECONFIG or "
                "KUBECONFIG) point at it?", retriable=True) from exc
        log.debug("%s (%.0f ms)", what, (time.monotonic() - start) * 1000)
        return result

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._call(f"find resource {kind}",
                          lambda: self.dynamic.resources.get(api_version=api_version, kind=kind))

    def serves_kind(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves ``kind`` in ``api_version`` (its CRD is installed)."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            self._resource(api_version, kind)
        except ResourceNotFoundError:
            return False
        return True

    # -- generic ----------------------------------------------------------------------------

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` (field manager ``modelrelease``, conflicts forced)."""
        meta = obj.get("metadata") or {}
        what = f"apply {_describe(obj['kind'], meta.get('namespace'), meta.get('name'))}"
        resource = self._resource(obj["apiVersion"], obj["kind"])
        result = self._call(what, lambda: self.dynamic.server_side_apply(
            resource, body=dict(obj), namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER, force_conflicts=True))
        return dict(result.to_dict())

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None:
        """The object as JSON, or None if it does not exist."""
        resource = self._resource(api_version, kind)
        found = self._maybe(f"get {_describe(kind, namespace, name)}",
                            lambda: self.dynamic.get(resource, name=name, namespace=namespace))
        return None if found is None else dict(found.to_dict())

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               grace_seconds: int | None = None, propagation: str = "Foreground") -> bool:
        """Delete an object; False if it was already gone.

        ``Foreground`` (the default) keeps the object until its dependents are gone (a
        Deployment until its pods are); ``Background`` removes it at once.
        """
        resource = self._resource(api_version, kind)
        body = {"propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds  # type: ignore[assignment]
        what = f"delete {_describe(kind, namespace, name)}"
        done = self._maybe(what, lambda: self.dynamic.delete(
            resource, name=name, namespace=namespace, body=body))
        return done is not None

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None,
                     selector: str = "") -> list[dict[str, Any]]:
        """Objects of one kind in a namespace (None: every namespace), by label selector."""
        resource = self._resource(api_version, kind)
        where = namespace or "all namespaces"
        found = self._call(f"list {kind.lower()} in {where}", lambda: self.dynamic.get(
            resource, namespace=namespace, label_selector=selector))
        return [dict(item.to_dict()) for item in found.items]

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str,
                    body: Mapping[str, Any]) -> None:
        """JSON-merge-patch an object (only the fields in ``body`` change; no field owner)."""
        resource = self._resource(api_version, kind)
        self._call(f"patch {_describe(kind, namespace, name)}",
                   lambda: self.dynamic.patch(resource, name=name, namespace=namespace,
                                              body=dict(body),
                                              content_type="application/merge-patch+json"))

    def patch_status(self, api_version: str, kind: str, name: str, namespace: str,
                     status: Mapping[str, Any]) -> None:
        """Merge-patch an object's ``status`` subresource."""
        resource = self._resource(api_version, kind)
        self._call(f"update status of {_describe(kind, namespace, name)}",
                   lambda: self.dynamic.patch(resource.subresources["status"], name=name,
                                              namespace=namespace, body={"status": status},
                                              content_type="application/merge-patch+json"))

    def event(self, involved: Mapping[str, Any], reason: str, message: str,
              warning: bool = False) -> None:
        """Record a Kubernetes Event on ``involved`` (best effort: never fails a release)."""
        meta = involved.get("metadata") or {}
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{meta.get('name')}.",
                         "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": involved.get("apiVersion"),
                               "kind": involved.get("kind"), "name": meta.get("name"),
                               "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "reason": reason, "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "modelrelease"},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        try:
            self._call(f"record event {reason}", lambda: self.core.create_namespaced_event(
                meta.get("namespace"), body))
        except KubeApiError as exc:
            log.warning("event not recorded: %s", exc.message)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Pods matching ``selector`` as JSON."""
        found = self._call(f"list pods in {namespace} ({selector})",
                           lambda: self.core.list_namespaced_pod(namespace,
                                                                 label_selector=selector))
        return [self._api.sanitize_for_serialization(p) for p in found.items]

    def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace exists."""
        return self.get("v1", "Namespace", namespace) is not None

    def denied(self, namespace: str, needs: Iterable[tuple[str, str, str]]) -> list[str]:
        """Which ``(verb, group, resource)`` in ``namespace`` this identity may not do.

        One SelfSubjectAccessReview each (every authenticated user may ask), so a release
        can refuse before it changes anything rather than halfway through.
        """
        from kubernetes import client

        auth = client.AuthorizationV1Api(self._api)
        missing: list[str] = []
        for verb, group, resource in needs:
            kind, _, sub = resource.partition("/")
            review = {"spec": {"resourceAttributes": {
                "namespace": namespace, "verb": verb, "group": group, "resource": kind,
                "subresource": sub}}}
            found: Any = self._call(f"review access {verb} {resource}", functools.partial(
                auth.create_self_subject_access_review, review))
            if not found.status.allowed:
                missing.append(f"{verb} {resource}" + (f".{group}" if group else ""))
        return missing

    def identity(self) -> str:
        """Who the API server says this client is (a SelfSubjectReview).

        For example ``system:serviceaccount:modelrelease:modelrelease-pipeline``.
        """
        from kubernetes import client

        auth = client.AuthenticationV1Api(self._api)
        found: Any = self._call("review who this is", functools.partial(
            auth.create_self_subject_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        return str(found.status.user_info.username)

    # -- a per-endpoint lock ----------------------------------------------------------------

    @contextmanager
    def lease(self, namespace: str, name: str, holder: str, ttl_seconds: int = 30,
              wait_seconds: float = 0.0) -> Iterator[bool]:
        """Hold the Lease ``name`` while inside; yields False if another holder has it.

        The Lease is renewed every ``ttl_seconds / 3`` while held, so a holder that dies
        (SIGKILL) lets go within ``ttl_seconds``; an expired Lease is taken over.
        """
        body: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": name, "namespace": namespace}}
        deadline = time.monotonic() + wait_seconds
        while True:
            got = self._try_lease(body, holder, ttl_seconds)
            if got or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        stop = threading.Event()
        if got:
            def renew() -> None:
                while not stop.wait(ttl_seconds / 3):
                    try:
                        self._try_lease(body, holder, ttl_seconds)
                    except KubeApiError as exc:
                        log.warning("renew lease %s/%s: %s", namespace, name, exc.message)

            threading.Thread(target=renew, daemon=True, name=f"lease-{name}").start()
        try:
            yield got
        finally:
            stop.set()
            if got:
                self._release_lease(namespace, name, holder)

    def _try_lease(self, body: dict[str, Any], holder: str, ttl: int) -> bool:
        now = datetime.now(UTC)
        meta = body["metadata"]
        current = self.get("coordination.k8s.io/v1", "Lease", meta["name"], meta["namespace"])
        spec = {"holderIdentity": holder, "leaseDurationSeconds": ttl,
                "acquireTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        if current is None:
            try:
                self._call("create lease", lambda: self.coordination.create_namespaced_lease(
                    meta["namespace"], {**body, "spec": spec}))
                return True
            except KubeApiError:
                return False  # someone else created it first
        held = current.get("spec") or {}
        renew = held.get("renewTime")
        expired = True
        if held.get("holderIdentity") and renew:
            renewed = datetime.fromisoformat(str(renew).replace("Z", "+00:00"))
            expired = (now - renewed).total_seconds() > float(held.get("leaseDurationSeconds")
                                                              or ttl)
        if held.get("holderIdentity") not in (None, "", holder) and not expired:
            return False
        replaced = {**body, "metadata": {**meta, "resourceVersion":
                                         current["metadata"]["resourceVersion"]}, "spec": spec}
        try:
            self._call("take lease", lambda: self.coordination.replace_namespaced_lease(
                meta["name"], meta["namespace"], replaced))
        except KubeApiError:
            return False  # lost a race: resourceVersion conflict
        return True

    def _release_lease(self, namespace: str, name: str, holder: str) -> None:
        current = self.get("coordination.k8s.io/v1", "Lease", name, namespace)
        if current and (current.get("spec") or {}).get("holderIdentity") == holder:
            # at once: a foreground delete would leave it held (finalizer) for a moment,
            # refusing the next release of the endpoint that comes right after
            self.delete("coordination.k8s.io/v1", "Lease", name, namespace,
                        propagation="Background")
