"""The local stack: a real Kubernetes control plane and its neighbours, on loopback.

Test and demo infrastructure, shipped apart from ``modelrelease`` (the distribution
``modelrelease-localstack`` in ``localstack/`` of a source checkout), so ``pip install
modelrelease`` installs no test infrastructure. ``modelrelease dev`` uses it when it is
installed (``scripts/bootstrap`` installs both).
"""
