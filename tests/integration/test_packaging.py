"""``pip install modelrelease`` ships no test infrastructure, and says so when asked for it.

The wheel is built from this checkout for real; then a fresh virtualenv that holds that
wheel's files and this environment's third-party packages, but not the local stack's
distribution (``localstack/``), runs the CLI.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(out), str(REPO)], check=True, timeout=300)
    (wheel,) = out.glob("modelrelease-*.whl")
    return wheel


def test_the_wheel_holds_no_local_stack_and_dev_says_how_to_get_it(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "unpacked")
    assert any(n.startswith("modelrelease/serving/") for n in names)
    assert not [n for n in names if "localstack" in n or n.startswith("tests/")]

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    (purelib,) = (env_dir / "lib").glob("python3*/site-packages")
    # third-party packages from here, modelrelease from the wheel; no editable installs
    (purelib / "deps.pth").write_text(f"{tmp_path / 'unpacked'}\n"
                                      + "\n".join(site.getsitepackages()) + "\n")
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([str(python), "-c", "import importlib.util as u; "
                            "print(u.find_spec('modelrelease_localstack'), "
                            "u.find_spec('modelrelease').origin)"],
                           capture_output=True, text=True, env=env, timeout=60, check=True)
    assert found.stdout.startswith("None ") and str(tmp_path / "unpacked") in found.stdout
    up = subprocess.run([str(python), "-m", "modelrelease.cli", "dev", "up"],
                        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert up.returncode == 2, up.stdout + up.stderr
    assert "the local stack ships apart from modelrelease and is not installed here" in up.stderr
    assert "scripts/bootstrap" in up.stderr
    demo = subprocess.run([str(python), "-m", "modelrelease.cli", "demo"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert demo.returncode == 2 and "modelrelease demo: the local stack ships apart" in \
        demo.stderr, demo.stderr
    version = subprocess.run([str(python), "-m", "modelrelease.cli", "--help"],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
    assert version.returncode == 0 and "release" in version.stdout  # the rest still works
