"""The serving entrypoint images run: ``python -m modelrelease.serving``.

Loads the MLflow model at ``$MODELRELEASE_MODEL_PATH`` (default ``/opt/ml/model``) and
serves MLflow's scoring server (``/ping``, ``/health``, ``/version``, ``/invocations``)
with uvicorn on ``$MODELRELEASE_PORT`` (default 8080), on all interfaces of the pod, and
Prometheus metrics on ``/metrics`` (see ``modelrelease.metrics``). ``$MODELRELEASE_FAULT``
injects a fault for rollback drills (see ``modelrelease.faults``); it is off unless set.
"""

from __future__ import annotations

import os


def main() -> None:
    """Load the model and serve it until stopped."""
    import uvicorn
    from mlflow.pyfunc import load_model
    from mlflow.pyfunc.scoring_server import init

    from modelrelease.faults import fault_from_env, with_fault
    from modelrelease.metrics import MetricsMiddleware

    fault = fault_from_env(os.environ)  # off unless a drill set it; a crash exits here
    model_path = os.environ.get("MODELRELEASE_MODEL_PATH", "/opt/ml/model")
    port = int(os.environ.get("MODELRELEASE_PORT", "8080"))
    host = os.environ.get("MODELRELEASE_HOST", "0.0.0.0")
    app = MetricsMiddleware(with_fault(init(load_model(model_path)), fault), os.environ)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
