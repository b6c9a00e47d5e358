"""The project's Prefect deployments on a Prefect server, and a process worker that runs them.

:func:`deploy_all` is what a user runs by hand (README, "Releases from Prefect"): create the
``modelrelease-local`` process work pool, then ``prefect deploy --all`` from the repository
root, which reads ``prefect.yaml`` (a link to ``deployments/prefect.yaml``).
:class:`LocalWorker` is ``prefect worker start --pool modelrelease-local``; the flow runs it
starts inherit its environment (``MODELRELEASE_*``, ``PREFECT_API_URL``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from modelrelease.errors import StackError
from modelrelease_localstack.process import Service

LOCAL_POOL = "modelrelease-local"
"""The process work pool the demo and the tests use."""
REPO = Path(__file__).resolve().parents[3]


def _prefect(api_url: str, *args: str, cwd: Path, timeout: float = 180) -> str:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    argv = [str(Path(sys.executable).parent / "prefect"), "--no-prompt", *args]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise StackError(f"prefect {' '.join(args)}: exit {done.returncode}: "
                         f"{(done.stdout + done.stderr).strip()[-1500:]}")
    return done.stdout


def deploy_all(api_url: str, repo: Path = REPO) -> str:
    """Create the local work pool (if missing) and every deployment in ``prefect.yaml``.

    Raises:
        StackError: ``prefect`` failed; the message carries the end of its output.
    """
    try:
        _prefect(api_url, "work-pool", "inspect", LOCAL_POOL, cwd=repo, timeout=60)
    except StackError:
        _prefect(api_url, "work-pool", "create", LOCAL_POOL, "--type", "process", cwd=repo,
                 timeout=60)
    return _prefect(api_url, "deploy", "--all", cwd=repo)


def deploy_to_kubernetes(api_url: str, image: str, workdir: Path, *, suffix: str = "",
                         only: list[str] | None = None,
                         trigger_resources: list[str] | None = None,
                         repo: Path = REPO) -> Path:
    """``prefect.yaml``'s deployments as Jobs of the ``modelrelease-k8s`` pool from ``image``.

    Writes the derived file (:func:`modelrelease.domain.work_pools.for_kubernetes`) into
    ``workdir`` and runs ``prefect deploy --all --prefect-file`` on it from ``repo`` (the
    entrypoints are read there; the runs load them from the image). Returns the file.

    Raises:
        StackError: ``prefect deploy`` failed; the message carries the end of its output.
    """
    import yaml

    from modelrelease.domain.work_pools import for_kubernetes

    source = yaml.safe_load((repo / "deployments" / "prefect.yaml").read_text())
    derived = for_kubernetes(source, image=image, suffix=suffix, only=only,
                             trigger_resources=trigger_resources)
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / "prefect-kubernetes.yaml"
    target.write_text(yaml.safe_dump(derived, sort_keys=False))
    _prefect(api_url, "deploy", "--all", "--prefect-file", str(target), cwd=repo)
    return target


class LocalWorker:
    """``prefect worker start`` for the local process pool, with its log under ``workdir``.

    Args:
        api_url: The Prefect server's API URL.
        workdir: Where the log and pidfile go.
        env: What flow runs need (``MODELRELEASE_*`` settings, ``KUBECONFIG``...).
        detached: Let the worker outlive this process (``modelrelease dev up``).
    """

    def __init__(self, api_url: str, workdir: Path, env: Mapping[str, str] | None = None, *,
                 detached: bool = False) -> None:
        self.api_url = api_url
        self.workdir = workdir
        self.name = f"modelrelease-{os.getpid()}"
        prefect = Path(sys.executable).parent / "prefect"
        argv = [str(prefect), "worker", "start", "--pool", LOCAL_POOL, "--type", "process",
                "--name", self.name, "--prefetch-seconds", "5"]
        self.service = Service("prefect-worker", argv, workdir,
                               env={**(env or {}), "PREFECT_API_URL": api_url,
                                    "PREFECT_WORKER_QUERY_SECONDS": "1"},
                               cwd=REPO, detached=detached)

    def _online(self) -> bool:
        request = urllib.request.Request(
            f"{self.api_url}/work_pools/{LOCAL_POOL}/workers/filter", data=b"{}",
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=2) as response:
            workers = json.loads(response.read())
        return any(w["name"] == self.name and w.get("status") == "ONLINE" for w in workers)

    def start(self, timeout: float = 60) -> None:
        """Start the worker and wait until the server lists it online."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.service.start()
        self.service.wait_ready(self._online, timeout, "online in its work pool")

    def stop(self) -> None:
        """Stop the worker (flow runs it started are its children and stop with it)."""
        self.service.stop()

    def __enter__(self) -> LocalWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

