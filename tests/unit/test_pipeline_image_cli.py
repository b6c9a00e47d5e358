"""`modelrelease image pipeline` (and `image base`, which shares its path): bad input is
refused before anything is built or pushed; the flows layer holds the checkout's flows; two
builds of one venv layer run pip once.

Building and running the image is in tests/integration/test_serving_base.py (the
pipeline's own image, beside the serving base it starts from).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import tarfile
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelrelease.build.pipeline_image import PipelineImageBuilder, default_requirements
from modelrelease.build.serving_base import read_pins
from modelrelease.cli import app
from modelrelease.domain import image as img
from modelrelease.errors import BuildError

pytestmark = pytest.mark.usefixtures("env")  # tests/unit/conftest.py


def _recipe(folder: Path) -> Path:
    folder.mkdir()
    (folder / "packages.txt").write_text("python3\n")
    (folder / "requirements.txt").write_text("six==1.17.0\n")
    return folder


@pytest.mark.parametrize(("requirements", "said"), [
    pytest.param("prefect==3.9.1\nhttpx>=0.27  # loose\n",
                 "httpx>=0.27 not pinned with ==; pin every package", id="loose-pin"),
    pytest.param(None, "No such file or directory; pass --requirements FILE", id="missing"),
])
def test_bad_requirements_are_refused_before_any_build(
        env: pytest.MonkeyPatch, tmp_path: Path, requirements: str | None, said: str) -> None:
    cache = tmp_path / "cache"
    env.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(cache))
    pins = tmp_path / "pins.txt"
    if requirements is not None:
        pins.write_text(requirements)
    result = CliRunner().invoke(app, [
        "image", "pipeline", "--to", "127.0.0.1:9/ml/pipeline:1", "--requirements", str(pins),
        "--recipe", str(_recipe(tmp_path / "recipe"))])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"read pipeline requirements {pins}" in message and said in message, message
    assert not cache.exists()  # nothing built, nothing cached


def test_a_missing_recipe_is_named(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["image", "pipeline", "--to", "127.0.0.1:9/ml/p:1",
                                      "--recipe", str(tmp_path / "nowhere")])
    assert result.exit_code == 2, result.output
    assert f"read serving-base recipe {tmp_path / 'nowhere' / 'packages.txt'}" in " ".join(
        result.output.split())
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("command", [pytest.param("base", id="image-base"),
                                     pytest.param("pipeline", id="image-pipeline")])
@pytest.mark.parametrize(("broken", "said"), [
    pytest.param("ca", "load registry CA", id="unreadable-ca"),
    pytest.param("recipe", "read serving-base recipe", id="missing-recipe"),
])
def test_both_image_commands_refuse_before_building(
        env: pytest.MonkeyPatch, tmp_path: Path, command: str, broken: str, said: str) -> None:
    """`image base` and `image pipeline` share one path: registry client, build, summary."""
    env.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(tmp_path / "cache"))
    recipe = _recipe(tmp_path / "recipe")
    if broken == "ca":
        (tmp_path / "ca.pem").write_text("not a certificate\n")
        env.setenv("MODELRELEASE_REGISTRY__CA_FILE", str(tmp_path / "ca.pem"))
    else:
        recipe = tmp_path / "nowhere"
    result = CliRunner().invoke(app, ["image", command, "--to", "127.0.0.1:9/ml/x:1",
                                      "--recipe", str(recipe)])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split()), result.output
    assert not (tmp_path / "cache").exists()


def test_the_shipped_pipeline_stack_is_fully_pinned_and_holds_the_worker() -> None:
    pins = dict(line.split("==") for line in
                read_pins(default_requirements(), "pipeline requirements").split())
    for name in ("prefect", "prefect-kubernetes", "kubernetes", "mlflow-skinny", "httpx",
                 "pydantic", "typer"):
        assert name in pins, name
    assert pins["prefect"].startswith("3.9.")


def _checkout(root: Path, *, without: str | None = None) -> Path:
    for rel, text in {"flows/__init__.py": "", "flows/release.py": "X = 1\n",
                      "flows/notes.txt": "not Python\n", "tasks/__init__.py": "",
                      "tasks/steps.py": "Y = 2\n",
                      "deployments/prefect.yaml": "name: modelrelease\n"}.items():
        if without and rel.startswith(without):
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _members(store_path: Path) -> dict[str, tuple[int, int, int]]:
    with gzip.open(store_path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as archive:
        return {m.name: (m.mode, m.uid, int(m.mtime)) for m in archive}


def test_the_flows_layer_holds_the_flows_tasks_and_deployments_at_the_epoch(
        tmp_path: Path) -> None:
    builder = PipelineImageBuilder(tmp_path / "cache")
    first = builder.flows_layer(1_700_000_000, _checkout(tmp_path / "a"))
    members = _members(builder.base.store.path(first.descriptor.digest))
    files = sorted(name for name, (mode, _, _) in members.items() if mode == 0o644)
    assert files == ["opt/modelrelease/deployments/prefect.yaml",
                     "opt/modelrelease/flows/__init__.py", "opt/modelrelease/flows/release.py",
                     "opt/modelrelease/tasks/__init__.py", "opt/modelrelease/tasks/steps.py"]
    assert {(uid, mtime) for _, uid, mtime in members.values()} == {(0, 1_700_000_000)}
    # the same files elsewhere, later: the same blob; another epoch: another blob
    again = builder.flows_layer(1_700_000_000, _checkout(tmp_path / "b"))
    assert again.descriptor == first.descriptor
    assert builder.flows_layer(1_700_000_001, tmp_path / "a").descriptor != first.descriptor


@pytest.mark.parametrize("missing", ["flows", "tasks", "deployments"])
def test_a_checkout_without_the_flows_is_refused(tmp_path: Path, missing: str) -> None:
    checkout = _checkout(tmp_path / "src", without=missing)
    with pytest.raises(BuildError) as caught:
        PipelineImageBuilder(tmp_path / "cache").flows_layer(1, checkout)
    assert f"{checkout / missing}" in str(caught.value)
    assert "build from a whole modelrelease checkout" in str(caught.value)


def test_a_second_build_of_the_same_venv_layer_waits_for_the_first(tmp_path: Path) -> None:
    """Two processes sharing a cache: the second waits on the layer's lock, then takes the
    first's layer instead of running pip again (here the first's record is already there,
    so no pip runs at all)."""
    builder = PipelineImageBuilder(tmp_path / "cache", (said := []).append)
    blob = b"pretend layer"
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    target = builder.base.store.path(digest)
    target.parent.mkdir(parents=True)
    target.write_bytes(blob)
    descriptor = img.Descriptor(img.OCI_LAYER_GZIP, digest, len(blob))
    debian = img.Layer(img.Descriptor(img.OCI_LAYER_GZIP, "sha256:" + "0" * 64, 1),
                       "sha256:" + "1" * 64)
    key = builder.venv_key(debian, "six==1.17.0", 1)
    folder = tmp_path / "cache" / "pipeline" / "venv"
    folder.mkdir(parents=True)
    (folder / f"{key}.json").write_text(json.dumps({
        "descriptor": descriptor.to_json(), "diffID": "sha256:" + "2" * 64,
        "packages": {"six": "1.17.0"}, "python": "3.11.2"}))
    results: list[object] = []
    with (folder / f"{key}.lock").open("a") as first:
        fcntl.flock(first, fcntl.LOCK_EX)  # the first build, still running
        second = threading.Thread(target=lambda: results.append(
            builder.venv_layer(debian, "six==1.17.0", 1)))
        second.start()
        second.join(1.0)
        assert second.is_alive() and not results  # waiting, not building
        assert said == ["pipeline layer: another build of it is running (same cache); "
                        "waiting for it"]
    second.join(10)
    (layer, packages, python, cached), = results  # type: ignore[misc]
    assert python == "3.11.2"
    assert cached and layer.descriptor == descriptor and packages == {"six": "1.17.0"}


def test_the_wheels_console_scripts_are_written_as_pip_would(tmp_path: Path) -> None:
    from modelrelease.build.serving_base import _console_scripts

    site = tmp_path / "site-packages"
    info = site / "modelrelease-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nmodelrelease = modelrelease.cli:main\n\n"
        "[prefect.collections]\nmodelrelease = modelrelease.adapters.email_block\n")
    assert _console_scripts(site, tmp_path / "bin") == ["modelrelease"]
    script = tmp_path / "bin" / "modelrelease"
    assert script.read_text() == ("#!/opt/venv/bin/python\nimport sys\n"
                                  "from modelrelease.cli import main\n"
                                  'if __name__ == "__main__":\n    sys.exit(main())\n')
    assert script.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["modelrelease"]
