"""Real sklearn models registered in MLflow, for the demo and the tests.

The iris data set ships with scikit-learn, so nothing is downloaded. Models are saved
with skops (``serialization_format="skops"``), with a signature and an input example.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def register_iris_model(
    tracking_uri: str,
    name: str = "iris-clf",
    *,
    alias: str | None = None,
    c: float = 1.0,
    extra_pip_requirements: list[str] | None = None,
    tags: Mapping[str, str] | None = None,
    samples: str | None = None,
    pip_requirements: list[str] | None = None,
) -> str:
    """Train a logistic regression on iris, log and register it; return the version.

    Args:
        tracking_uri: The MLflow server.
        name: The registered model's name.
        alias: An alias to point at the new version.
        c: Inverse regularisation strength (different values, different weights).
        extra_pip_requirements: Requirements the model needs beyond its flavour's.
        pip_requirements: All of its requirements instead of the ones MLflow infers from
            this process (e.g. only what the serving base has, for a build with no PyPI).
        tags: Tags for the model version.
        samples: Also log the 150 iris rows at this artifact path (``.csv`` or ``.json``
            records), as a sample set for the output-agreement check.
    """
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    # the registry follows the tracking URI; setting it globally too would point every
    # later MlflowClient(tracking_uri=OTHER) of this process at this server's registry
    mlflow.set_tracking_uri(tracking_uri)
    features, model = _iris(c)
    example = features.head(3)
    mlflow.set_experiment(f"{name}-training")
    with mlflow.start_run():
        info: Any = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            serialization_format="skops",
            registered_model_name=name,
            extra_pip_requirements=extra_pip_requirements,
            pip_requirements=pip_requirements,
            skops_trusted_types=TRUSTED,
        )
        _log_samples(features, samples)
    version = str(info.registered_model_version)
    client = MlflowClient(tracking_uri=tracking_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return version


TRUSTED = ["numpy.dtype", "sklearn.linear_model._logistic.LogisticRegression"]
"""The types an iris model's skops file holds (``skops_trusted_types``)."""


def _iris(c: float, shuffled: bool = False) -> tuple[Any, Any]:
    """The iris features (columns ``sepal_length``...) and a logistic regression on them.

    ``shuffled``: trained on the labels in a fixed shuffled order (a model that disagrees).
    """
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True)
    features = data.data.rename(columns=lambda col: col.replace(" (cm)", "").replace(" ", "_"))
    labels = data.target.sample(frac=1.0, random_state=7).to_numpy() if shuffled else \
        data.target
    return features, LogisticRegression(C=c, max_iter=500).fit(features, labels)


def save_iris_model(path: str, *, c: float = 1.0, shuffled: bool = False) -> None:
    """Save an iris model at ``path`` (an MLflow model directory), with no server.

    ``shuffled``: trained on shuffled labels, so it disagrees with the others often.
    """
    import mlflow
    from mlflow.models import infer_signature

    features, model = _iris(c, shuffled)
    example = features.head(3)
    mlflow.sklearn.save_model(model, path, serialization_format="skops",
                              signature=infer_signature(example, model.predict(example)),
                              input_example=example, skops_trusted_types=TRUSTED,
                              pip_requirements=["mlflow", "scikit-learn", "skops"])


def register_faulty_model(tracking_uri: str, name: str, fault: str, *, delay_s: float = 0.0,
                          error_rate: float = 0.0, samples: str | None = None,
                          slow_share: float = 1.0, slow_column: str | None = None,
                          slow_value: Any = None, slow_after_s: float = 0.0,
                          alias: str | None = None) -> str:
    """Register an iris model with an injected fault (see ``faulty``); return the version.

    The signature is the healthy model's, so a wrong answer is a wrong answer. ``samples``
    logs a sample set as :func:`register_iris_model` does; ``alias`` is pointed at the
    new version.
    """
    import cloudpickle  # type: ignore[import-untyped]
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelrelease_localstack import faulty
    from modelrelease_localstack.faulty import FaultyModel

    # by value: the serving image has modelrelease, not this test package
    cloudpickle.register_pickle_by_value(faulty)
    # the registry follows the tracking URI; setting it globally too would point every
    # later MlflowClient(tracking_uri=OTHER) of this process at this server's registry
    mlflow.set_tracking_uri(tracking_uri)
    data = load_iris(as_frame=True)
    features = data.data.rename(columns=lambda col: col.replace(" (cm)", "").replace(" ", "_"))
    estimator = LogisticRegression(max_iter=500).fit(features, data.target)
    example = features.head(3)
    signature = infer_signature(example, estimator.predict(example))
    mlflow.set_experiment(f"{name}-training")
    with mlflow.start_run():
        info: Any = mlflow.pyfunc.log_model(
            name="model",
            python_model=FaultyModel(estimator, fault, delay_s=delay_s, error_rate=error_rate,
                                     slow_share=slow_share, slow_column=slow_column,
                                     slow_value=slow_value, slow_after_s=slow_after_s),
            signature=signature,
            input_example=example,
            registered_model_name=name,
            pip_requirements=["mlflow", "scikit-learn", "cloudpickle"],
        )
        _log_samples(features, samples)
    version = str(info.registered_model_version)
    if alias is not None:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, alias, version)
    return version


def _log_samples(features: Any, path: str | None) -> None:
    """Log ``features`` (a data frame) at ``path`` in the active run: CSV or JSON records."""
    if path is None:
        return
    import mlflow

    if path.endswith(".csv"):
        mlflow.log_text(features.to_csv(index=False), path)
    else:
        mlflow.log_text(features.to_json(orient="records"), path)
