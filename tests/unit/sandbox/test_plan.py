"""Planning a container: the guest spec, the 9p shares, the rootfs and the VM's size.

``plan_container`` is where a host path in a spec becomes something the guest
can use (a share under the export) or is refused (a host namespace other than
the network's), and where the read-only promise of ``root.readonly`` and of
``overlay`` is kept. Both front doors rely on it, so its decisions are pinned
here without a VM: shares and their read-only flag, the agent's mount map,
what is dropped from the guest spec, and that the caller's spec is untouched.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from strongbox.errors import SandboxError
from strongbox.hypervisor.base import VMShape
from strongbox.oci.sizing import MIB
from strongbox.oci.spec import validate
from strongbox.sandbox.plan import ContainerRequest, plan_container, rootfs_target, vm_size_for
from strongbox.sandbox.shares import Share

ROOTFS = "/tmp/x"
SHAPE = VMShape(default_memory_mib=512, default_vcpus=1, memory_margin_mib=96, max_vcpus=4)


def make_spec(**extra: Any) -> dict[str, Any]:
    """A validated minimal spec with ``extra`` top-level keys (``root`` replaces the default)."""
    document: dict[str, Any] = {"ociVersion": "1.0.2", "root": {"path": ROOTFS},
                                "process": {"args": ["true"], "cwd": "/"}}
    document.update(extra)
    return validate(document)


def request(spec: dict[str, Any], **fields: Any) -> ContainerRequest:
    return ContainerRequest(id=fields.pop("id", "c1"), spec=spec, rootfs=ROOTFS, **fields)


def shares_of(shares: list[Share]) -> list[tuple[str, str, bool]]:
    return [(s.source, s.target, s.readonly) for s in shares]


# --- the root filesystem ---------------------------------------------------------------


@pytest.mark.parametrize(("readonly", "overlay", "shared_readonly"), [
    (False, False, False),
    (True, False, True),
    (False, True, True),
    (True, True, True),
])
def test_rootfs_is_a_share_readonly_for_root_readonly_or_overlay(
        readonly: bool, overlay: bool, shared_readonly: bool) -> None:
    spec = make_spec(root={"path": ROOTFS, "readonly": readonly})
    plan = plan_container(request(spec, overlay=overlay))
    assert shares_of(plan.shares) == [(ROOTFS, "c1/rootfs", shared_readonly)]
    assert plan.rootfs_target == rootfs_target("c1") == "c1/rootfs"
    assert plan.rootfs_mounts == []
    assert plan.mounts == {}
    assert plan.netns is None


def test_containerd_rootfs_mounts_replace_the_rootfs_share(tmp_path: Path) -> None:
    mounts = ({"type": "overlay", "source": "overlay",
               "options": ["lowerdir=/l", "upperdir=/u", "workdir=/w"]},)
    volume = tmp_path / "vol"
    volume.mkdir()
    spec = make_spec(mounts=[{"destination": "/data", "type": "bind", "source": str(volume),
                              "options": ["rbind"]}])
    plan = plan_container(request(spec, rootfs_mounts=mounts))
    assert shares_of(plan.shares) == [(str(volume), "c1/mounts/0/vol", False)]
    assert plan.rootfs_mounts == list(mounts)
    assert plan.rootfs_target == "c1/rootfs"


# --- bind mounts -----------------------------------------------------------------------


def test_bind_mounts_become_shares_with_the_agents_map(tmp_path: Path) -> None:
    a, b, c = (tmp_path / name for name in "abc")
    for path in (a, b):
        path.mkdir()
    c.write_text("file\n")  # a single file can be bound too
    spec = make_spec(mounts=[
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/a", "type": "bind", "source": str(a), "options": ["ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        {"destination": "/b", "type": "none", "source": str(b), "options": ["rbind", "rw"]},
        {"destination": "/c", "source": str(c), "options": ["bind", "ro", "nosuid"]},
    ])
    plan = plan_container(request(spec))
    assert shares_of(plan.shares) == [
        (ROOTFS, "c1/rootfs", False),
        (str(a), "c1/mounts/1/a", True),
        (str(b), "c1/mounts/3/b", False),
        (str(c), "c1/mounts/4/c", True),
    ]
    assert plan.mounts == {"1": "c1/mounts/1/a", "3": "c1/mounts/3/b", "4": "c1/mounts/4/c"}
    # the spec's mounts themselves are left for the agent, which rewrites the sources
    assert [m["destination"] for m in plan.spec["mounts"]] == ["/proc", "/a", "/tmp", "/b", "/c"]


def test_share_targets_are_under_the_container_id(tmp_path: Path) -> None:
    spec = make_spec(mounts=[{"destination": "/d", "type": "bind", "source": str(tmp_path)}])
    plan = plan_container(request(spec, id="web-7"))
    name = tmp_path.name
    assert [s.target for s in plan.shares] == ["web-7/rootfs", f"web-7/mounts/0/{name}"]
    assert plan.mounts == {"0": f"web-7/mounts/0/{name}"}


def test_a_share_is_named_after_what_its_source_resolves_to(tmp_path: Path) -> None:
    """As the root field of runc's mountinfo: the target's name for a symlink, and
    no name at all for "/" (its share is ``mounts/<n>`` itself)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    spec = make_spec(mounts=[
        {"destination": "/l", "type": "bind", "source": str(tmp_path / "link")},
        {"destination": "/host", "type": "bind", "source": "/", "options": ["rbind", "ro"]},
        {"destination": "/d", "type": "bind", "source": str(tmp_path / "real") + "/"}])
    plan = plan_container(request(spec))
    assert plan.mounts == {"0": "c1/mounts/0/real", "1": "c1/mounts/1",
                           "2": "c1/mounts/2/real"}


@pytest.mark.parametrize("source", ["relative/dir", ""])
def test_a_bind_without_an_absolute_source_is_refused(tmp_path: Path, source: str) -> None:
    spec = make_spec(mounts=[
        {"destination": "/ok", "type": "bind", "source": str(tmp_path)},
        {"destination": "/bad", "options": ["rbind"], "source": source},
    ])
    with pytest.raises(SandboxError, match=r"mounts\[1\]\.source.*absolute"):
        plan_container(request(spec))


def test_a_bind_of_a_missing_source_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    spec = make_spec(mounts=[{"destination": "/m", "type": "bind", "source": str(missing)}])
    with pytest.raises(SandboxError, match=r"mounts\[0\]\.source.*no such file"):
        plan_container(request(spec))


# --- namespaces and cgroups ------------------------------------------------------------


def test_the_network_namespace_path_is_for_the_vmm_not_the_guest() -> None:
    spec = make_spec(linux={"namespaces": [
        {"type": "pid"}, {"type": "network", "path": "/run/netns/cni-1"}, {"type": "mount"},
    ]})
    plan = plan_container(request(spec))
    assert plan.netns == "/run/netns/cni-1"
    assert plan.spec["linux"]["namespaces"] == [{"type": "pid"}, {"type": "mount"}]


def test_a_new_network_namespace_is_the_vms_not_one_inside_the_guest() -> None:
    """Docker's new namespace (no path) is QEMU's: the container uses the VM's own, where
    the NICs for the interfaces Docker's hook adds to QEMU's namespace appear."""
    spec = make_spec(linux={"namespaces": [{"type": "network"}, {"type": "pid"}]})
    plan = plan_container(request(spec))
    assert plan.netns is None
    assert plan.spec["linux"]["namespaces"] == [{"type": "pid"}]


@pytest.mark.parametrize("kind", ["pid", "ipc", "uts", "mount"])
def test_joining_another_host_namespace_is_refused(kind: str) -> None:
    spec = make_spec(linux={"namespaces": [
        {"type": "network", "path": "/run/netns/n"}, {"type": kind, "path": f"/proc/9/ns/{kind}"},
    ]})
    with pytest.raises(SandboxError, match=rf"linux\.namespaces\[1\].*{kind}"):
        plan_container(request(spec))


def test_a_pod_member_joins_its_pods_namespaces_in_the_guest() -> None:
    spec = make_spec(linux={"namespaces": [
        {"type": "network", "path": "/run/netns/pod"},
        {"type": "ipc", "path": "/proc/100/ns/ipc"},
        {"type": "uts", "path": "/proc/100/ns/uts"},
        {"type": "mount"},
    ]})
    join = {"ipc": "/proc/1/ns/ipc", "uts": "/proc/1/ns/uts", "pid": "/proc/1/ns/pid"}
    plan = plan_container(request(spec, pod_member=True), join)
    assert plan.netns == "/run/netns/pod"
    assert plan.spec["linux"]["namespaces"] == [
        {"type": "ipc", "path": "/proc/1/ns/ipc"},
        {"type": "uts", "path": "/proc/1/ns/uts"},
        {"type": "mount"},
    ]


def test_join_does_not_cover_a_type_it_does_not_name() -> None:
    spec = make_spec(linux={"namespaces": [
        {"type": "ipc", "path": "/proc/100/ns/ipc"}, {"type": "mount", "path": "/proc/100/ns/mnt"},
    ]})
    with pytest.raises(SandboxError, match=r"linux\.namespaces\[1\].*mount"):
        plan_container(request(spec, pod_member=True), {"ipc": "/proc/1/ns/ipc"})


def test_the_cgroups_path_is_dropped() -> None:
    spec = make_spec(linux={"cgroupsPath": "/kubepods/pod1/c1"})
    plan = plan_container(request(spec))
    assert "cgroupsPath" not in plan.spec["linux"]


def test_the_callers_spec_is_not_modified(tmp_path: Path) -> None:
    spec = make_spec(
        mounts=[{"destination": "/d", "type": "bind", "source": str(tmp_path), "options": ["ro"]}],
        linux={"cgroupsPath": "/x/y", "namespaces": [
            {"type": "network", "path": "/run/netns/n"}, {"type": "ipc", "path": "/proc/9/ns/ipc"},
            {"type": "pid"},
        ]},
    )
    before = copy.deepcopy(spec)
    plan = plan_container(request(spec), {"ipc": "/proc/1/ns/ipc"})
    assert spec == before
    plan.spec["linux"]["namespaces"].append({"type": "uts"})
    plan.spec["mounts"][0]["options"].append("nosuid")
    assert spec == before  # a deep copy, not shared pieces


# --- the VM's size ---------------------------------------------------------------------


def test_vm_size_without_limits_is_the_shapes_default() -> None:
    assert vm_size_for(make_spec(), SHAPE) == (512, 1)
    other = VMShape(default_memory_mib=2048, default_vcpus=2, memory_margin_mib=64, max_vcpus=8)
    assert vm_size_for(make_spec(), other) == (2048, 2)


@pytest.mark.parametrize("limit", [0, -1])
def test_vm_size_no_limit_values_mean_the_default(limit: int) -> None:
    spec = make_spec(linux={"resources": {"memory": {"limit": limit}}})
    assert vm_size_for(spec, SHAPE)[0] == 512


@pytest.mark.parametrize(("limit", "memory_mib"), [
    (256 * MIB, 256 + 96),
    (256 * MIB + 1, 257 + 96),  # rounded up to a whole MiB
    (1 * MIB, 128),  # never below a bootable minimum
])
def test_vm_memory_is_the_limit_plus_the_margin(limit: int, memory_mib: int) -> None:
    spec = make_spec(linux={"resources": {"memory": {"limit": limit}}})
    assert vm_size_for(spec, SHAPE) == (memory_mib, 1)


@pytest.mark.parametrize(("cpu", "vcpus"), [
    ({"quota": 100000, "period": 100000}, 1),
    ({"quota": 150000, "period": 100000}, 2),  # rounded up
    ({"quota": 200000}, 2),  # the default period is 100 ms
    ({"cpus": "0-2"}, 3),
    ({"quota": 100000, "period": 100000, "cpus": "0,2"}, 2),  # the larger of the two
    ({"quota": 1600000, "period": 100000}, 4),  # capped at the shape's maximum
])
def test_vm_vcpus_follow_the_quota_or_cpuset(cpu: dict[str, Any], vcpus: int) -> None:
    spec = make_spec(linux={"resources": {"cpu": cpu}})
    assert vm_size_for(spec, SHAPE) == (512, vcpus)
