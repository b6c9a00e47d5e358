"""modelrelease: from the MLflow registry to a verified, canaried Kubernetes deployment."""

__version__ = "0.1.0"
