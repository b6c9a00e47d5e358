"""A real Kubernetes node on this host: containerd, kubelet, kube-proxy and a CNI bridge.

:class:`KubeNode` joins a :class:`~modelrelease_localstack.controlplane.ControlPlane` and
undoes every change it made to the host when it stops (see :mod:`.hostchanges`).
"""

from modelrelease_localstack.kubenode.node import GPU_RESOURCE, PAUSE_IMAGE, KubeNode, node_assets

__all__ = ["GPU_RESOURCE", "PAUSE_IMAGE", "KubeNode", "node_assets"]
