# Two commands do everything; each sets up what is missing first (scripts/bootstrap).
#   make demo   a real model from MLflow to a pushed, reproducible serving image
#   make test   every test tier: unit, integration (real registry, MLflow, ...)
.PHONY: setup kube-assets metrics-server-assets prometheus-assets demo test test-fast lint bench

PY := .venv/bin/python
# the code before the architecture issue (#13): the code benchmarks' baseline
CODE_BASELINE := 24d22bc

setup:
	@bash scripts/bootstrap

demo: setup kube-assets metrics-server-assets
	@.venv/bin/modelrelease demo

kube-assets:
	@bash scripts/kube-assets >/dev/null

metrics-server-assets:
	@bash scripts/metrics-server-assets >/dev/null

prometheus-assets:
	@bash scripts/prometheus-assets >/dev/null

lint: setup
	@.venv/bin/ruff check src localstack/src tests flows tasks $(wildcard benchmarks)
	@.venv/bin/mypy

# prepare: setup and the Kubernetes/metrics-server/Prometheus builds, the builds in the
# background;
# suite: the tests that use the local stack, and beside them lint and the rest
test:
	@bash scripts/prepare
	@bash scripts/suite

test-fast: setup
	@.venv/bin/pytest tests/unit tests/fast

bench: setup kube-assets metrics-server-assets
	@$(PY) benchmarks/image_build.py
	@$(PY) benchmarks/stack.py
	@$(PY) benchmarks/release.py
	@$(PY) benchmarks/rollback.py
	@$(PY) benchmarks/judge.py
	@$(PY) benchmarks/loadgen.py
	@$(PY) benchmarks/shadow.py
	@$(PY) benchmarks/jobs.py
	@$(PY) benchmarks/release_path.py --baseline $(CODE_BASELINE)
	@$(PY) benchmarks/code_size.py --baseline $(CODE_BASELINE)
