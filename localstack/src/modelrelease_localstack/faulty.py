"""Models that misbehave on purpose, for end-to-end tests of the release flow.

Each wraps a real trained estimator in an MLflow ``PythonModel`` that fails one way:
``crash`` (the server dies while loading it), ``wrong_shape`` (answers with a list per
row where the signature promises one integer), ``slow`` (sleeps before answering; with
``slow_share`` below 1 only on that share of calls, a tail-only regression; with
``slow_column`` only on calls whose input has ``slow_value`` in that column, a
slice-only one; with ``slow_after_s``, only that many seconds after the model loaded, a
version that degrades once promoted),
``errors`` (fails a share of requests), ``disagree`` (fast and well-formed, but answers the
next class: every prediction shifted by one, modulo 3; with ``slow_share`` or
``slow_column`` only on those calls, as ``slow``) or ``exit`` (the serving process exits on
the first call ``slow_after_s`` after the model loaded: a canary that crashes mid-step).
The class is pickled by value (``register_faulty_model``), so a serving image, which
holds ``modelrelease`` but not this test package, can unpickle it.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import mlflow.pyfunc


class FaultyModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """An estimator with one injected fault."""

    def __init__(self, estimator: Any, fault: str, delay_s: float = 0.0,
                 error_rate: float = 0.0, slow_share: float = 1.0,
                 slow_column: str | None = None, slow_value: Any = None,
                 slow_after_s: float = 0.0) -> None:
        self.estimator = estimator
        self.fault = fault
        self.delay_s = delay_s
        self.error_rate = error_rate
        self.slow_share = slow_share
        self.slow_column = slow_column
        self.slow_value = slow_value
        self.slow_after_s = slow_after_s
        self.loaded_at = time.monotonic()

    def load_context(self, context: Any) -> None:
        """Crash at load time for the ``crash`` fault; note when the model loaded."""
        if self.fault == "crash":
            raise RuntimeError("injected fault: this model refuses to load")
        self.loaded_at = time.monotonic()

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        """Predict, with the fault applied."""
        if self.fault == "exit" and self._slowed(model_input):
            os._exit(3)  # the whole serving process, as a segfault in a native library would
        if self.fault == "slow" and self._slowed(model_input):
            time.sleep(self.delay_s)
        if self.fault == "errors" and random.random() < self.error_rate:
            raise RuntimeError("injected fault: failed request")
        predictions = self.estimator.predict(model_input)
        if self.fault == "wrong_shape":
            return [[int(p), int(p)] for p in predictions]
        if self.fault == "disagree" and self._slowed(model_input):
            return [(int(p) + 1) % 3 for p in predictions]
        return predictions

    def _slowed(self, model_input: Any) -> bool:
        """Whether this call is one the fault hits (``slow``, ``disagree``, ``exit``).

        Models pickled before the share and the column existed have neither: every call.
        """
        since = time.monotonic() - getattr(self, "loaded_at", 0.0)
        if since < getattr(self, "slow_after_s", 0.0):
            return False
        column = getattr(self, "slow_column", None)
        if column is not None:
            return bool((model_input[column] == self.slow_value).any())
        return random.random() < getattr(self, "slow_share", 1.0)
