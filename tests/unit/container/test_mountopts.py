"""Mount options: flags, propagation and file-system data, kept apart."""

from __future__ import annotations

import pytest

from strongbox.container import _syscalls as sc
from strongbox.container.errors import ContainerError
from strongbox.container.mountopts import MountOptions, root_propagation
from strongbox.container.mounts import MountEntry


def test_flags_and_data_are_split() -> None:
    opts = MountOptions.parse(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts.flags == sc.MS_NOSUID | sc.MS_STRICTATIME
    assert opts.data == "mode=755,size=65536k"
    assert opts.propagation == []


def test_later_options_undo_earlier_ones() -> None:
    opts = MountOptions.parse(["ro", "nodev", "noexec", "rw", "dev", "exec", "suid", "async"])
    assert opts.flags == 0


def test_every_flag_word() -> None:
    words = ["ro", "nosuid", "nodev", "noexec", "sync", "dirsync", "remount", "mand",
             "noatime", "nodiratime", "relatime", "strictatime"]
    assert MountOptions.parse(words).flags == (
        sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_SYNCHRONOUS
        | sc.MS_DIRSYNC | sc.MS_REMOUNT | sc.MS_MANDLOCK | sc.MS_NOATIME | sc.MS_NODIRATIME
        | sc.MS_RELATIME | sc.MS_STRICTATIME)
    assert MountOptions.parse([*words, "norelatime", "atime"]).flags & (
        sc.MS_RELATIME | sc.MS_NOATIME) == 0


def test_bind_rbind_and_propagation() -> None:
    opts = MountOptions.parse(["rbind", "ro", "rprivate", "unbindable", "tmpcopyup"])
    assert opts.is_bind
    assert opts.flags == sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY
    assert opts.propagation == [sc.MS_PRIVATE | sc.MS_REC, sc.MS_UNBINDABLE]
    assert opts.data == ""


def test_devpts_options_are_data() -> None:
    opts = MountOptions.parse(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                               "gid=5"])
    assert opts.flags == sc.MS_NOSUID | sc.MS_NOEXEC
    assert opts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"


def test_root_propagation() -> None:
    assert root_propagation(None) == sc.MS_PRIVATE | sc.MS_REC
    assert root_propagation("rslave") == sc.MS_SLAVE | sc.MS_REC
    assert root_propagation("shared") == sc.MS_SHARED
    with pytest.raises(ContainerError, match="unknown rootfsPropagation 'sideways'"):
        root_propagation("sideways")


def test_mount_entry_kinds() -> None:
    bind = MountEntry.from_spec(0, {"destination": "data", "type": "bind", "source": "/x"})
    assert bind.is_bind and bind.destination == "/data"
    by_option = MountEntry.from_spec(1, {"destination": "/d", "source": "/x",
                                         "options": ["rbind"]})
    assert by_option.is_bind and by_option.fstype == "bind"
    proc = MountEntry.from_spec(2, {"destination": "/proc", "type": "proc", "source": "proc"})
    assert not proc.is_bind
    with pytest.raises(ContainerError, match=r"mounts\[3\] has no destination"):
        MountEntry.from_spec(3, {"type": "tmpfs"})
