"""The RuntimeClass manifest that points Kubernetes at containerd's strongbox handler."""

from __future__ import annotations

from strongbox.install import kubernetes


def test_runtime_class_manifest() -> None:
    assert kubernetes.runtime_class() == (
        "apiVersion: node.k8s.io/v1\n"
        "kind: RuntimeClass\n"
        "metadata:\n"
        "  name: strongbox\n"
        "handler: strongbox\n"
    )


def test_the_handler_is_the_containerd_runtime_name() -> None:
    from strongbox.install.containerd import runtime_keys

    handler = kubernetes.runtime_class().splitlines()[-1].removeprefix("handler: ")
    assert runtime_keys(2)[-1] == handler


def test_delete_hint() -> None:
    assert "kubectl delete runtimeclass strongbox" in kubernetes.delete_hint()
