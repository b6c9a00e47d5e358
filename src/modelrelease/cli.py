"""The ``modelrelease`` command line: the same functions the flows call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from modelrelease.errors import PipelineError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Release MLflow models to Kubernetes: build, canary, verify, promote.")
image_app = typer.Typer(no_args_is_help=True, help="Build serving images without a daemon.")
app.add_typer(image_app, name="image")


def _progress(line: str) -> None:
    typer.echo(f"[modelrelease] {line}", err=True)


def _fail(exc: PipelineError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(code=2)


@image_app.command("build")
def image_build(
    model: Annotated[str, typer.Option(help="models:/NAME/VERSION, models:/NAME@ALIAS, "
                                            "models:/NAME/STAGE or an MLflow model directory")],
    base: Annotated[str, typer.Option(help="serving base image, e.g. REGISTRY/ml/base:1")],
    to: Annotated[str, typer.Option(help="REGISTRY/REPO[:TAG] or oci:DIR")],
    tag: Annotated[list[str] | None, typer.Option(help="extra tag (repeatable)")] = None,
    compress_model: Annotated[bool | None, typer.Option(
        "--compress-model/--no-compress-model", help="gzip the model layer")] = None,
    port: Annotated[int | None, typer.Option(help="scoring server port")] = None,
) -> None:
    """Build and push a model version's serving image; print its pinned reference."""
    from modelrelease.build.builder import BuildRequest, build_image

    request = BuildRequest(model=model, base=base, to=to, tags=tuple(tag or ()),
                           compress_model=compress_model, port=port)
    try:
        result = build_image(request, progress=_progress)
    except PipelineError as exc:
        raise _fail(exc) from None
    _progress(f"{'re-used' if result.reused else 'built'} {result.model.name} "
              f"v{result.model.version} in {result.seconds:.2f}s, "
              f"{result.stats.bytes_uploaded} bytes uploaded, tags {', '.join(result.tags)}")
    typer.echo(result.image)


@image_app.command("base")
def image_base(
    to: Annotated[str, typer.Option(help="REGISTRY/REPO[:TAG] to push the dev base to")],
) -> None:
    """Build the development serving base (the node supplies Python) and push it."""
    from modelrelease.adapters.oci_registry import RegistryClient
    from modelrelease.build.base import build_dev_base
    from modelrelease.domain.reference import ImageRef
    from modelrelease.settings import PipelineSettings

    settings = PipelineSettings()
    try:
        with RegistryClient(settings.registry, progress=_progress) as client:
            digest, _ = build_dev_base(to, client, settings.build.cache_dir)
    except PipelineError as exc:
        raise _fail(exc) from None
    ref = ImageRef.parse(to)
    typer.echo(f"{ref.registry}/{ref.repository}@{digest}")


@app.command("demo")
def demo(
    workdir: Annotated[Path | None, typer.Option(help="keep the demo's files here")] = None,
) -> None:
    """Run the demo: a real model from MLflow to a pushed, reproducible image."""
    from modelrelease.localstack.demo import run_demo

    try:
        run_demo(workdir, say=typer.echo)
    except PipelineError as exc:
        raise _fail(exc) from None


@app.command("version")
def version() -> None:
    """Print the version."""
    from modelrelease import __version__

    typer.echo(json.dumps({"modelrelease": __version__, "python": sys.version.split()[0]}))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
