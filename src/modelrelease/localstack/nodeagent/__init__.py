"""The local node agent: a small kubelet that runs pods' containers with runc.

``agent`` watches the pods bound to its Node; ``network`` gives each pod a network
namespace on a bridge; ``runtime`` runs containers with runc; ``probes`` checks them;
``podstatus`` (pure) turns what happened into the Pod's status.
"""
