"""The shipped dashboard and PodMonitor refer to metrics the serving pods really export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from modelrelease.serving.metrics import MetricsMiddleware

ROOT = Path(__file__).resolve().parents[2] / "deployments" / "observability"


def _exported() -> set[str]:
    async def app(scope: object, receive: object, send: object) -> None:
        return None

    middleware = MetricsMiddleware(app, {})  # type: ignore[arg-type]
    names: set[str] = set()
    for metric in middleware.registry.collect():
        names |= {sample.name for sample in metric.samples}
        names.add(metric.name)
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
    names |= {f"{n}_bucket" for n in list(names)}
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "grafana-dashboard.json").read_text())
    exported = _exported()
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\b(modelrelease_[a-z_]+)", target["expr"])}
    assert used and used <= exported, used - exported
    assert {p["title"] for p in dashboard["panels"]} >= {"Error rate", "Latency p50 / p95 / p99"}


def test_podmonitor_scrapes_the_http_port() -> None:
    monitor = yaml.safe_load((ROOT / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s"}


def test_prometheus_scrape_job_keeps_serving_pods_and_labels_them_as_the_reader_expects() -> None:
    from modelrelease.domain.manifests import LABEL_MANAGED_BY, MANAGED_BY, SCRAPE
    from modelrelease.settings import PrometheusConfig

    (job,) = yaml.safe_load((ROOT / "prometheus-scrape.yaml").read_text())["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    rules = job["relabel_configs"]
    managed = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9]", "_", LABEL_MANAGED_BY)
    keeps = {tuple(r["source_labels"]): r["regex"] for r in rules if r.get("action") == "keep"}
    assert keeps[(managed,)] == MANAGED_BY
    assert keeps[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)] == \
        SCRAPE["prometheus.io/scrape"]
    targets = {r.get("target_label"): r["source_labels"] for r in rules}
    defaults = PrometheusConfig()
    assert targets[defaults.namespace_label] == ["__meta_kubernetes_namespace"]
    assert targets[defaults.pod_label] == ["__meta_kubernetes_pod_name"]
    address = next(r for r in rules if r.get("target_label") == "__address__")
    assert re.sub(address["regex"].replace("\\d", r"\d"), "\\1:\\2",
                  "10.244.0.7:8080;" + SCRAPE["prometheus.io/port"]) == "10.244.0.7:8080"
