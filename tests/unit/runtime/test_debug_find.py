"""Which run directory ``strongbox debug`` means by an id (the console test boots a VM in
tests/integration/test_debug.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.errors import ContainerNotFound, StrongboxError
from strongbox.runtime.commands.debug_cmd import find_vm


def test_a_cli_vm_a_shim_vm_and_a_client_roots_vm(tmp_path: Path) -> None:
    for path in ("vms/web", "vms/k8s.io-pod1", "clients/moby-1234/vms/app"):
        (tmp_path / path).mkdir(parents=True)
    assert find_vm(tmp_path, "web") == tmp_path / "vms" / "web"
    assert find_vm(tmp_path, "pod1") == tmp_path / "vms" / "k8s.io-pod1"  # <namespace>-<id>
    assert find_vm(tmp_path, "app") == tmp_path / "clients" / "moby-1234" / "vms" / "app"
    with pytest.raises(ContainerNotFound, match="container nope does not exist"):
        find_vm(tmp_path, "nope")
    (tmp_path / "vms" / "default-web").mkdir()
    with pytest.raises(StrongboxError, match="web names more than one VM"):
        find_vm(tmp_path, "web")
