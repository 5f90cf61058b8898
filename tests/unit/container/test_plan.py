"""The plan parsed from a spec: defaults for partial dicts, and the errors caught before fork."""

from __future__ import annotations

import copy
import stat
from typing import Any

import pytest

from strongbox.container import _syscalls as sc
from strongbox.container.devices import Device
from strongbox.container.errors import ContainerError
from strongbox.container.namespaces import Namespaces
from strongbox.container.plan import ContainerPlan, ProcessPlan
from tests.framework.bundle import DEFAULT_SPEC

MINIMAL: dict[str, Any] = {"process": {"args": ["sh"]},
                           "linux": {"namespaces": [{"type": "mount"}]}}


def test_partial_spec_gets_runtime_spec_defaults() -> None:
    plan = ContainerPlan(MINIMAL)
    proc = plan.process
    assert (proc.cwd, proc.env, proc.uid, proc.gid, proc.additional_gids) == ("/", [], 0, 0, [])
    assert proc.umask == 0o022
    assert proc.capabilities is None and proc.seccomp is None and proc.rlimits == []
    assert proc.no_new_privileges is False and proc.oom_score_adj is None
    assert plan.mounts == [] and plan.devices == [] and plan.sysctl == {}
    assert plan.root_readonly is False
    assert plan.propagation == sc.MS_PRIVATE | sc.MS_REC
    assert plan.setup_dev


def test_runc_default_spec() -> None:
    plan = ContainerPlan(copy.deepcopy(DEFAULT_SPEC))
    assert plan.namespaces.new == {"pid", "network", "ipc", "uts", "mount"}
    assert [m.destination for m in plan.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    assert plan.root_readonly and plan.hostname == "runc"
    assert plan.process.no_new_privileges
    assert plan.process.env_value("TERM") == "xterm"


@pytest.mark.parametrize(("change", "stage", "message"), [
    ({"process": {"args": []}}, "spec", "process.args must be a non-empty list"),
    ({"hostname": "h"}, "hostname", "without a private UTS namespace"),
    ({"linux": {"namespaces": []}}, "namespace", "a new mount namespace is required"),
    ({"linux": {"namespaces": [{"type": "mount"}, {"type": "time"}]}}, "namespace",
     "time namespaces are not supported"),
    ({"linux": {"namespaces": [{"type": "mount"}, {"type": "mount"}]}}, "namespace",
     "listed twice"),
    ({"linux": {"namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}]}}, "namespace",
     "joining a mount namespace is not supported"),
    ({"linux": {"namespaces": [{"type": "mount"}], "devices": [{"path": "/dev/x",
                                                                "type": "q"}]}},
     "device", "invalid device /dev/x"),
])
def test_spec_errors(change: dict[str, Any], stage: str, message: str) -> None:
    spec = {**MINIMAL, **change}
    with pytest.raises(ContainerError, match=message) as info:
        ContainerPlan(spec)
    assert info.value.stage == stage


def test_namespaces_new_and_joined() -> None:
    ns = Namespaces.from_spec([{"type": "mount"}, {"type": "pid"},
                               {"type": "network", "path": "/run/netns/x"}, {"type": "uts"}])
    assert ns.new == {"mount", "pid", "uts"}
    assert ns.join == {"network": "/run/netns/x"}
    assert ns.unshare_flags() == sc.CLONE_NEWNS | sc.CLONE_NEWUTS  # pid: around the fork
    assert ns.has("network") and not ns.has("ipc")


def test_device_from_spec() -> None:
    dev = Device.from_spec({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229})
    assert (dev.kind, dev.major, dev.minor, dev.mode, dev.uid, dev.gid) == (
        stat.S_IFCHR, 10, 229, 0o666, 0, 0)
    fifo = Device.from_spec({"path": "/dev/p", "type": "p", "fileMode": 0o100600})
    assert (fifo.kind, fifo.mode) == (stat.S_IFIFO, 0o600)


def test_bind_mount_of_dev_means_no_device_setup() -> None:
    spec = {**MINIMAL, "mounts": [{"destination": "/dev", "type": "bind", "source": "/dev"}]}
    assert not ContainerPlan(spec).setup_dev


def test_process_plan_user_and_env() -> None:
    plan = ProcessPlan({"args": ["x"], "cwd": "work", "env": ["A=1", "A=2", "B"],
                        "user": {"uid": 5, "gid": 6, "additionalGids": [7], "umask": 0o77},
                        "oomScoreAdj": -100, "noNewPrivileges": True}, {})
    assert plan.cwd == "/work"
    assert plan.env_value("A") == "2" and plan.env_value("B") is None
    assert (plan.uid, plan.gid, plan.additional_gids, plan.umask) == (5, 6, [7], 0o77)
    assert plan.oom_score_adj == -100
