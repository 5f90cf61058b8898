"""User namespaces: mappings parsed as runc reads them, the map text, and the sync lines."""

from __future__ import annotations

import os
from typing import Any

import pytest

from strongbox.container import _syscalls as sc
from strongbox.container.errors import ContainerError
from strongbox.container.namespaces import Namespaces
from strongbox.container.plan import ContainerPlan
from strongbox.container.sync import MAPPED, ChildEnd, wait_ready
from strongbox.container.userns import UserNamespace, map_text, to_host

AUTO = [{"containerID": 0, "hostID": 100000, "size": 65536}]  # podman --userns=auto's shape


def _linux(**extra: Any) -> dict[str, Any]:
    return {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "user"}], **extra}


def test_mappings_translate_ids_and_write_one_line_per_range() -> None:
    userns = UserNamespace.from_spec(_linux(uidMappings=AUTO, gidMappings=[
        {"containerID": 0, "hostID": 200000, "size": 10},
        {"containerID": 1000, "hostID": 300000, "size": 1}]), True)
    assert userns is not None
    assert userns.host_ids(0, 1000) == (100000, 300000)
    assert userns.host_ids(65536, 5) == (-1, 200005)  # unmapped uid: left alone
    assert to_host(userns.gids, 10) is None
    assert map_text(userns.uids) == b"0 100000 65536\n"


@pytest.mark.parametrize(("linux", "wanted", "fragment"), [
    ({"uidMappings": AUTO, "gidMappings": AUTO}, False, "no user namespace"),
    ({"uidMappings": AUTO}, True, "needs linux.uidMappings and linux.gidMappings"),
    ({"uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}], "gidMappings": AUTO}, True,
     "linux.uidMappings[0]"),
    ({"uidMappings": AUTO, "gidMappings": [{"containerID": 0}]}, True, "linux.gidMappings[0]"),
])
def test_bad_mappings_are_one_error_naming_the_field(linux: dict[str, Any], wanted: bool,
                                                     fragment: str) -> None:
    with pytest.raises(ContainerError) as info:
        UserNamespace.from_spec(linux, wanted)
    assert fragment in str(info.value) and info.value.stage == "userns"


def test_the_plan_has_a_user_namespace_that_owns_the_pid_namespace() -> None:
    plan = ContainerPlan({"process": {"args": ["sh"]},
                          "linux": _linux(uidMappings=AUTO, gidMappings=AUTO)})
    assert plan.userns is not None and "user" in plan.namespaces.new
    flags = plan.namespaces.unshare_flags()
    assert flags & sc.CLONE_NEWPID and flags & sc.CLONE_NEWNS
    assert not flags & sc.CLONE_NEWUSER  # unshared on its own, first
    without = Namespaces.from_spec([{"type": "mount"}, {"type": "pid"}])
    assert not without.unshare_flags() & sc.CLONE_NEWPID  # the launcher's fork enters it


def test_joining_a_user_namespace_by_path_is_refused() -> None:
    with pytest.raises(ContainerError, match="joining a user namespace"):
        Namespaces.from_spec([{"type": "mount"}, {"type": "user", "path": "/proc/1/ns/user"}])


def test_userns_and_pid_lines_come_before_ready() -> None:
    report_r, report_w = os.pipe()
    start_r, start_w = os.pipe()
    try:
        child = ChildEnd(report_w, start_r)
        os.write(start_w, MAPPED)
        child.request_mapping()  # reads the parent's answer
        child.report_pid(4242)
        os.write(report_w, b"ready\tnote\n")
        seen: list[list[str]] = []
        assert wait_ready(report_r, seen.append) == ["note"]
        assert seen == [["userns"], ["pid", "4242"]]
        os.close(start_w)
        start_w = -1
        with pytest.raises(ContainerError, match="did not map"):
            child.request_mapping()
    finally:
        for fd in (report_r, report_w, start_r, start_w):
            if fd >= 0:
                os.close(fd)
