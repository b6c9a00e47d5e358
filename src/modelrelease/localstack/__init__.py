"""The local stack: a real Kubernetes control plane and its neighbours, on loopback."""
