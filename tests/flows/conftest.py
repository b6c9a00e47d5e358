"""The flows tier's shared fixtures (``stack`` and ``deployed``: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint
from tests.support import Deployed


@pytest.fixture
def endpoint(stack: Stack, deployed: Deployed) -> Iterator[Endpoint]:
    """An endpoint of its own whose file is in the deployments' endpoints dir; its
    namespace is deleted afterwards."""
    made = make_endpoint(stack, deployed.endpoints_dir)
    yield made
    made.file.unlink(missing_ok=True)
    made.core.delete_namespace(made.namespace)
