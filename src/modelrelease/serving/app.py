"""The serving process images run (``python -m modelrelease.serving``): load, then serve.

Loads the MLflow model at ``$MODELRELEASE_MODEL_PATH`` (default ``/opt/ml/model``) and
serves MLflow's scoring server (``/ping``, ``/health``, ``/version``, ``/invocations``)
with uvicorn on ``$MODELRELEASE_PORT`` (default 8080), on all interfaces of the pod, and
Prometheus metrics on ``/metrics`` (see ``modelrelease.serving.metrics``). ``$MODELRELEASE_FAULT``
injects a fault for rollback drills (see ``modelrelease.serving.faults``); it is off unless set.
``$MODELRELEASE_SHADOW_TARGET`` and ``$MODELRELEASE_SHADOW_TOKEN`` let a release copy live
requests to its canary (``/modelrelease/shadow``, see ``modelrelease.serving.shadow``).

It says on stderr (``kubectl logs``) what it loaded, how long that took, and where it
listens; per-request logs are left to the metrics.
"""

from __future__ import annotations

import os
import sys
import time


def _say(message: str) -> None:
    print(f"modelrelease serving: {message}", file=sys.stderr, flush=True)


def main() -> None:
    """Load the model and serve it until stopped."""
    import uvicorn
    from mlflow.pyfunc import load_model
    from mlflow.pyfunc.scoring_server import init

    from modelrelease.domain.shadow import TOKEN_ENV
    from modelrelease.serving.faults import fault_from_env, with_fault
    from modelrelease.serving.metrics import MetricsMiddleware
    from modelrelease.serving.shadow import ShadowMiddleware

    fault = fault_from_env(os.environ)  # off unless a drill set it; a crash exits here
    model_path = os.environ.get("MODELRELEASE_MODEL_PATH", "/opt/ml/model")
    port = int(os.environ.get("MODELRELEASE_PORT", "8080"))
    host = os.environ.get("MODELRELEASE_HOST", "0.0.0.0")
    if fault is not None:
        _say(f"rollback drill fault injected: {fault}")
    started = time.monotonic()
    model = load_model(model_path)
    meta = model.metadata
    _say(f"loaded {model_path} (run {meta.run_id or '-'}, flavor "
         f"{meta.flavors.get('python_function', {}).get('loader_module', '?')}) in "
         f"{time.monotonic() - started:.1f}s")
    metrics = MetricsMiddleware(with_fault(init(model), fault), os.environ)
    app = ShadowMiddleware(metrics, os.environ, metrics.registry)
    if app.target is not None:
        _say(f"shadow copies go to {app.target} when a release turns them on "
             f"({'control on' if app.token else 'control off: no ' + TOKEN_ENV})")
    _say(f"listening on {host}:{port} (/ping, /invocations, /metrics)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

