"""docs/ARCHITECTURE.md names only files and modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ARCHITECTURE.md"
PACKAGE = REPO / "src" / "modelrelease"
IN_PACKAGE = ("domain/", "adapters/", "build/", "release/", "spec/")
"""Short paths the doc writes relative to ``src/modelrelease/``."""
# a backticked path: a file or a directory of the repository, or one relative to the package
PATH = re.compile(r"`((?:src|localstack|flows|tasks|tests|scripts|deployments|docs)/[\w./-]*|"
                  r"(?:domain|adapters|build|release|spec)/[\w./-]+)`")


def _named() -> list[str]:
    return sorted(set(PATH.findall(DOC.read_text())))


def test_the_doc_names_paths() -> None:
    assert len(_named()) > 40


@pytest.mark.parametrize("path", _named())
def test_every_named_path_exists(path: str) -> None:
    here = PACKAGE / path if path.startswith(IN_PACKAGE) else REPO / path
    assert here.exists(), f"docs/ARCHITECTURE.md names {path}, which is not at {here}"
