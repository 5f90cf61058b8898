"""Kubernetes: the RuntimeClass that sends a pod to strongbox through containerd's CRI.

A pod asks for ``runtimeClassName: strongbox``; the kubelet passes the
class's ``handler`` to containerd, which looks it up under the CRI
plugin's ``runtimes`` table, where ``strongbox install`` put it. So the
handler must be the runtime's name there. strongbox only prints the
manifest: applying it is a cluster-wide act for ``kubectl``, not for a
node-local installer.
"""

from __future__ import annotations

from strongbox.install import RUNTIME_NAME

API_VERSION = "node.k8s.io/v1"


def runtime_class(name: str = RUNTIME_NAME, handler: str = RUNTIME_NAME) -> str:
    """The RuntimeClass manifest as YAML, ready for ``kubectl apply -f -``."""
    return (f"apiVersion: {API_VERSION}\n"
            "kind: RuntimeClass\n"
            "metadata:\n"
            f"  name: {name}\n"
            f"handler: {handler}\n")


def delete_hint(name: str = RUNTIME_NAME) -> str:
    """What to run on uninstall: the class is the cluster's, so strongbox only says it."""
    return f"kubernetes: remove the RuntimeClass with `kubectl delete runtimeclass {name}`"
