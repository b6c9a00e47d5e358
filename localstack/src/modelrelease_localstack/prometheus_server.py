"""A real Prometheus on 127.0.0.1 that scrapes the local stack's serving pods.

Its scrape job is the one shipped in ``deployments/observability/prometheus-scrape.yaml``
(pod discovery through the API server, the pods' ``prometheus.io/*`` annotations), with the
stack's kubeconfig and a short interval added. ``static`` targets instead scrape given
``host:port`` addresses with fixed ``namespace``/``pod`` labels (for tests of the reader
itself). The binary comes from ``scripts/prometheus-assets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelrelease_localstack.assets import built_binary
from modelrelease_localstack.process import Service, answers_ok, free_ports

VERSION = "v3.16.0"
"""The Prometheus ``scripts/prometheus-assets`` builds; part of the cache path."""
SCRAPE_JOB = (Path(__file__).resolve().parents[3] / "deployments" / "observability"
              / "prometheus-scrape.yaml")


def prometheus_binary() -> Path:
    """The binary: ``PROMETHEUS`` when set, else the cache ``scripts/prometheus-assets`` fills.

    Raises:
        StackError: it is missing, with the command that builds it.
    """
    return built_binary("PROMETHEUS", "prometheus", VERSION, "prometheus",
                        script="prometheus-assets",
                        otherwise="set PROMETHEUS to a prometheus binary")


def scrape_config(interval: str, *, kubeconfig: Path | None = None,
                  static: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """prometheus.yml: the shipped pod job (with ``kubeconfig``) or ``static`` targets.

    ``static``: ``host:port`` -> ``(namespace, pod)``.
    """
    config: dict[str, Any] = {"global": {"scrape_interval": interval,
                                         "scrape_timeout": interval,
                                         "evaluation_interval": interval}}
    if static is not None:
        config["scrape_configs"] = [{
            "job_name": "static", "scrape_interval": interval,
            "static_configs": [{"targets": [address], "labels": {"namespace": ns, "pod": pod}}
                               for address, (ns, pod) in static.items()]}]
        return config
    jobs = yaml.safe_load(SCRAPE_JOB.read_text())["scrape_configs"]
    for job in jobs:
        job["scrape_interval"] = interval
        for sd in job.get("kubernetes_sd_configs", []):
            if kubeconfig is not None:
                sd["kubeconfig_file"] = str(kubeconfig)
    config["scrape_configs"] = jobs
    return config


class LocalPrometheus:
    """One Prometheus process with its config, TSDB and log under ``workdir``.

    Args:
        workdir: Holds ``prometheus.yml``, ``data/`` and the log.
        kubeconfig: Discover the stack's pods with this identity (needs list/watch pods).
        static: Scrape these ``host:port`` targets instead, labelled ``(namespace, pod)``.
        interval: Scrape interval (Prometheus duration).
    """

    def __init__(self, workdir: Path, *, kubeconfig: Path | None = None,
                 static: Mapping[str, tuple[str, str]] | None = None,
                 interval: str = "1s", port: int | None = None) -> None:
        if (kubeconfig is None) == (static is None):
            raise ValueError("give exactly one of kubeconfig (pod discovery) or static targets")
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.static = dict(static) if static is not None else None
        self.interval = interval
        self.port = port or free_ports(1)[0]
        self.service: Service | None = None

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        return answers_ok(f"{self.url}/-/ready")

    def start(self, timeout: float = 60) -> None:
        """Write the config, start Prometheus and wait until ``/-/ready``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(
            self.interval, kubeconfig=self.kubeconfig, static=self.static), sort_keys=False))
        argv = [str(prometheus_binary()), f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=2h", "--log.level=warn"]
        self.service = Service("prometheus", argv, self.workdir)
        self.service.start()
        self.service.wait_ready(self._ready, timeout, "ready (/-/ready)")

    def stop(self) -> None:
        """Stop Prometheus (its data stays in ``workdir``)."""
        if self.service is not None:
            self.service.stop()

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
