"""Daemonless, reproducible image builds from MLflow model versions."""
