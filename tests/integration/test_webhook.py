"""MLflow webhooks -> `modelrelease webhook serve` -> Prefect events, all real.

The stack's MLflow server (webhook env set in localstack/mlflow_server.py) calls a receiver
started as users start it (`modelrelease webhook serve`, a subprocess on a free 127.0.0.1
port) after `modelrelease webhook register`; the assertions read the stack's real Prefect
server (POST /api/events/filter) and the receiver's own log.

MLflow caches each event's webhook list for MLFLOW_WEBHOOK_CACHE_TTL (60 s) and does not
drop that cache when a webhook is created; the stack set an alias at start-up (the demo
model), so alias deliveries may begin up to a minute after registration. The test waits for
that with a throw-away alias before it measures anything.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelrelease.domain.webhook import signature
from modelrelease.spec import endpoint_yaml, parse_endpoint
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.support import deliver, prefect_call, webhook_receiver

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "modelrelease")
SECRET = f"whsec-{secrets.token_hex(16)}"
ENDPOINT, NAMESPACE = "wh-iris", "ml"
EVENT = "modelrelease.release.requested"


@dataclass
class Receiver:
    url: str
    log: Path
    model: str
    mlflow: str
    prefect_api: str
    env: dict[str, str]
    since: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _env(stack: Stack, folder: Path) -> dict[str, str]:
    assert stack.mlflow is not None and stack.prefect is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELRELEASE_", "MLFLOW_"))}
    env.update({"MODELRELEASE_WEBHOOK__SECRET": SECRET,
                "MODELRELEASE_RELEASE__ENDPOINTS_DIR": str(folder),
                "MODELRELEASE_MLFLOW__TRACKING_URI": stack.mlflow.url,
                "PREFECT_API_URL": stack.prefect.api_url})
    return env


@pytest.fixture(scope="module")
def receiver(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    assert stack.mlflow is not None and stack.prefect is not None
    root = tmp_path_factory.mktemp("webhook")
    model = f"wh-clf-{uuid.uuid4().hex[:8]}"
    folder = root / "endpoints"
    folder.mkdir()
    endpoint = parse_endpoint({
        "apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {"name": ENDPOINT, "namespace": NAMESPACE},
        "spec": {"model": {"name": model, "alias": "champion"},
                 "image": {"repository": "127.0.0.1:5000/ml/wh-iris",
                           "base": "127.0.0.1:5000/ml/serving-base:dev"},
                 "resources": {"cpu": "100m", "memory": "128Mi"}}})
    (folder / f"{ENDPOINT}.yaml").write_text(endpoint_yaml(endpoint))
    env = _env(stack, folder)
    log = root / "receiver.log"
    since = datetime.now(UTC).isoformat()
    with webhook_receiver(env, log) as url:
        yield Receiver(f"{url}/webhook", log, model, stack.mlflow.url, stack.prefect.api_url,
                       env, since)


def _register(receiver: Receiver) -> dict[str, Any]:
    result = subprocess.run([CLI, "webhook", "register", "--url", receiver.url],
                            env=receiver.env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _events(receiver: Receiver, version: str | None = None) -> list[dict[str, Any]]:
    response = prefect_call(receiver.prefect_api, "POST", "/events/filter", {
        "filter": {"event": {"name": [EVENT]},
                   "resource": {"id": [f"modelrelease.endpoint.{NAMESPACE}.{ENDPOINT}"]},
                   "occurred": {"since": receiver.since}},
        "limit": 50})
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return [e for e in events if version is None or str(e["payload"]["version"]) == version]


def _wait_for_event(receiver: Receiver, version: str, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _events(receiver, version):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def _deliver(receiver: Receiver, payload: bytes, delivery: str,
             sig: str | None = None) -> httpx.Response:
    return deliver(receiver.url, SECRET, payload, delivery, sig)


def _alias_body(model: str, version: str) -> bytes:
    return json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": datetime.now(UTC).isoformat(),
                       "data": {"name": model, "alias": "champion", "version": version}}).encode()


def test_register_creates_then_updates_one_webhook(receiver: Receiver) -> None:
    from mlflow.tracking import MlflowClient

    first, second = _register(receiver), _register(receiver)
    assert first["action"] in ("created", "updated")  # another test may have made it
    assert second["action"] == "updated"
    assert first["webhook_id"] == second["webhook_id"]
    hooks = [h for h in MlflowClient(tracking_uri=receiver.mlflow).list_webhooks()
             if h.name == "modelrelease"]
    assert len(hooks) == 1
    assert hooks[0].url == receiver.url
    assert sorted(str(e) for e in hooks[0].events) == ["model_version.created",
                                                       "model_version_alias.created"]


def test_an_alias_set_in_mlflow_becomes_one_prefect_event(receiver: Receiver) -> None:
    from mlflow.tracking import MlflowClient

    _register(receiver)
    client = MlflowClient(tracking_uri=receiver.mlflow)
    first = register_iris_model(receiver.mlflow, receiver.model)
    second = register_iris_model(receiver.mlflow, receiver.model, c=0.5)
    # Wait out MLflow's webhook cache (module docstring) with an alias nobody follows.
    warm_start = time.monotonic()
    marker = f"model_version_alias.created {receiver.model} v{first} @warmup"
    while marker not in receiver.log_text():
        assert time.monotonic() - warm_start < 90, receiver.log_text()
        client.set_registered_model_alias(receiver.model, "warmup", first)
        poll_end = time.monotonic() + 3
        while marker not in receiver.log_text() and time.monotonic() < poll_end:
            time.sleep(0.1)
    warm_up = time.monotonic() - warm_start
    third = register_iris_model(receiver.mlflow, receiver.model, c=0.25)
    created = f"model_version.created {receiver.model} v{third}"
    deadline = time.monotonic() + 5
    while created not in receiver.log_text():  # acknowledged: no endpoint pins it
        assert time.monotonic() < deadline, receiver.log_text()
        time.sleep(0.1)

    posted = f"-> release requested for {NAMESPACE}/{ENDPOINT} v{second}"
    set_at = time.monotonic()
    client.set_registered_model_alias(receiver.model, "champion", second)
    accepted_s = stored_s = None
    while time.monotonic() - set_at < 5 and stored_s is None:
        if accepted_s is None and posted in receiver.log_text():
            accepted_s = time.monotonic() - set_at  # Prefect answered 204 to the receiver
        if _events(receiver, second):
            stored_s = time.monotonic() - set_at  # the event is queryable in Prefect
        time.sleep(0.02)
    assert stored_s is not None, receiver.log_text()
    [event] = _events(receiver, second)
    assert event["payload"]["endpoint"] == ENDPOINT
    assert event["payload"]["source"] == "webhook"
    assert posted in receiver.log_text()
    posted_s = None if accepted_s is None else round(accepted_s, 3)
    print(json.dumps({"bench": "webhook_alias_to_event", "alias_to_posted_s": posted_s,
                      "alias_to_stored_s": round(stored_s, 3),
                      "cache_warm_up_s": round(warm_up, 1)}))


def test_bad_signatures_and_replays_post_no_event(receiver: Receiver) -> None:
    version = "41"  # a version no real delivery names: any event for it came from here
    payload = _alias_body(receiver.model, version)
    forged = signature("not-the-secret", "forged-1", str(int(time.time())), payload)
    refused = _deliver(receiver, payload, "forged-1", forged)
    assert refused.status_code == 401
    assert refused.json()["error"] == "bad_signature"

    delivery = str(uuid.uuid4())
    ts = str(int(time.time()))
    good = signature(SECRET, delivery, ts, payload)
    headers = {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery,
               "X-MLflow-Timestamp": ts, "X-MLflow-Signature": good}
    accepted = httpx.post(receiver.url, content=payload, headers=headers, timeout=10)
    assert accepted.status_code == 202, accepted.text
    assert _wait_for_event(receiver, version, timeout=5) is not None
    replayed = httpx.post(receiver.url, content=payload, headers=headers, timeout=10)
    assert replayed.status_code == 200
    assert replayed.json()["status"] == "duplicate"
    # The same delivery id signed again over another version: still a duplicate, no event.
    reused = _deliver(receiver, _alias_body(receiver.model, "42"), delivery)
    assert reused.json()["status"] == "duplicate"

    time.sleep(2)  # what Prefect would have stored by now, had anything been posted
    assert len(_events(receiver, version)) == 1
    assert _events(receiver, "42") == []
    log = receiver.log_text()
    assert "webhook refused from 127.0.0.1" in log and "bad_signature" in log
    assert f"webhook delivery {delivery}: duplicate, dropped" in log
    for secret in (SECRET, forged.split(",")[1], good.split(",")[1]):
        assert secret not in log
