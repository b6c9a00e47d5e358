"""Pure domain logic: values and decisions, no I/O and no vendor imports.

Nothing under ``modelrelease.domain`` may import kubernetes, httpx, mlflow or prefect;
``tests/unit/test_domain_purity.py`` proves it.
"""
