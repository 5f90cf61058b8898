"""Address: where a shim listens, derived exactly as containerd 1.6 derives it.

containerd dials whatever ``start`` prints; containers of one pod must reach
the same shim, so the address is a function of containerd's own address, the
namespace and the *grouping* key (the pod's sandbox id, or the container id):
``unix:///run/containerd/s/<hex sha256(address + "/" + namespace + "/" + key)>``
(1.6 ``runtime/v2/shim/util_unix.go`` SocketAddress).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from pathlib import Path
from typing import Any

from strongbox.atomicfile import atomic_write
from strongbox.ids import validate_id

SOCKET_DIR = Path("/run/containerd/s")
CRI_CONTAINER_TYPE = "io.kubernetes.cri.container-type"
CRI_SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
RUNC_GROUP = "io.containerd.runc.v2.group"


def grouping(container_id: str, annotations: dict[str, Any]) -> str:
    """The key that puts the containers of one pod in one shim (and one VM)."""
    for key in (RUNC_GROUP, CRI_SANDBOX_ID):
        value = annotations.get(key)
        if isinstance(value, str) and value:
            return value
    return container_id


def sandbox_name(namespace: str, key: str) -> str:
    """The VM (run directory) name of a pod: unique per containerd namespace.

    The key may come from a bundle's annotations: the name is held to the
    container-id rule (a ConfigError otherwise), so it can never walk out of
    ``<root>/vms`` or into another option on QEMU's command line.
    """
    return validate_id(f"{namespace}-{key}"[:80])


def is_pod_member(annotations: dict[str, Any]) -> bool:
    """A CRI container that joins its pod's sandbox (not the sandbox itself)."""
    return annotations.get(CRI_CONTAINER_TYPE) == "container"


def socket_address(containerd_address: str, namespace: str, key: str) -> str:
    digest = hashlib.sha256(f"{containerd_address}/{namespace}/{key}".encode()).hexdigest()
    return f"unix://{SOCKET_DIR / digest}"


def socket_path(address: str) -> str:
    return address.removeprefix("unix://")


def can_connect(address: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    try:
        sock.connect(socket_path(address))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def listen(address: str) -> socket.socket:
    """A listening socket at ``address``; a stale socket file is replaced."""
    path = socket_path(address)
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError:
        if can_connect(address):
            sock.close()
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def remove_socket(address: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path(address))


def write_address(bundle: Path, address: str) -> None:
    atomic_write(bundle / "address", address.encode())
    os.chmod(bundle / "address", 0o666)


def write_pid(bundle: Path, pid: int) -> None:
    atomic_write(bundle / "shim.pid", str(pid).encode())
    os.chmod(bundle / "shim.pid", 0o644)
