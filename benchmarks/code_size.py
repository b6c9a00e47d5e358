"""Benchmark: module and function sizes of the product code, now and at a baseline ref.

Run ``.venv/bin/python benchmarks/code_size.py [--baseline REF]``. It reads the Python
files under ``src/modelrelease/`` from git (the committed tree of ``HEAD`` and, with
``--baseline``, of ``REF``; nothing is checked out) and prints one JSON line per ref:

``{"bench":"code_size","ref":…,"modules":…,"lines":…,"largest":{path: lines, …},``
``"long_functions":{"path:function": lines, …}}``

``largest`` holds the ten largest modules; ``long_functions`` every function (or method)
over 80 lines, measured from its ``def`` to its last line (``end_lineno - lineno + 1``).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PRODUCT = "src/modelrelease/"
LONG = 80


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=True).stdout


def sizes(files: dict[str, str]) -> dict[str, Any]:
    """Lines per module (largest ten) and functions over 80 lines, of ``{path: source}``."""
    lines = {path: len(source.splitlines()) for path, source in files.items()}
    long: dict[str, int] = {}
    for path, source in files.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                span = (node.end_lineno or node.lineno) - node.lineno + 1
                if span > LONG:
                    long[f"{path}:{node.name}"] = span
    largest = sorted(lines.items(), key=lambda item: (-item[1], item[0]))[:10]
    return {"modules": len(lines), "lines": sum(lines.values()), "largest": dict(largest),
            "long_functions": dict(sorted(long.items(), key=lambda item: -item[1]))}


def tree(ref: str) -> dict[str, str]:
    """The product's Python files at ``ref``, by path under ``src/modelrelease/``."""
    paths = _git("ls-tree", "-r", "--name-only", ref, "--", PRODUCT).split()
    return {path.removeprefix(PRODUCT): _git("show", f"{ref}:{path}")
            for path in paths if path.endswith(".py")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REF", help="also measure this git ref (first)")
    args = parser.parse_args()
    for ref in ([args.baseline] if args.baseline else []) + ["HEAD"]:
        name = _git("rev-parse", "--short", ref).strip()
        print(json.dumps({"bench": "code_size", "ref": name, **sizes(tree(ref))}), flush=True)


if __name__ == "__main__":
    main()
