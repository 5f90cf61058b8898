"""Blockroot hands a block device's file system to the guest instead of sharing it over 9p.

When a container's rootfs (or a bind mount's source) is the root of a file system
mounted from a block device (a loop device, a device-mapper or other block
snapshotter's device), the guest can mount the device itself: no 9p on the I/O
path. The device stays attached on the host (nothing is detached); what must not
happen is two kernels caching one file system, each writing behind the other's
back. So for the container's life the sandbox *takes* it:

1. the mount must be the only one of that device in the host's mount namespace, and
   the device must not be held by anyone else (another mount namespace, an
   exclusive opener): else a clear error, and nothing changed;
2. the host mount is unmounted (``umount(8)`` in the host's mount namespace: the
   CLI's monitor lives in a namespace of its own, whose copy goes too), and the
   device opened exclusively (``O_EXCL``); that descriptor is what QEMU gets, so
   the kernel refuses any host mount of it while QEMU lives;
3. when the VM is gone it is mounted again where it was, with the options it had:
   a fresh mount, which reads what the guest wrote.

The take is recorded in the VM's run directory first (:data:`RECORD`), with the
mount namespace it was taken from, so whoever reaps a dead owner's VM
(:mod:`.rundir`) mounts it back too, and only from that namespace (a monitor's own
namespace leaves it to a later command on the host).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from strongbox.atomicfile import atomic_write
from strongbox.container._syscalls import umount
from strongbox.errors import SandboxError

RECORD = "block-mounts.json"
#: File systems the guest kernel mounts.
GUEST_FILESYSTEMS = ("ext4",)
#: Per-mount options mount(8) takes back as they are (the rest are the kernel's defaults).
_MOUNT_OPTIONS = {"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime",
                  "strictatime", "lazytime"}
#: A serial names the disk to the guest (virtio-blk carries at most 20 bytes).
SERIAL_PREFIX = "sb"


@dataclass(frozen=True)
class BlockMount:
    """One host mount of a whole block-device file system."""

    device: str  # /dev/loop3
    rdev: int
    mount_point: str
    fstype: str
    #: Per-mount options (``ro,nosuid,...``) and the file system's own (``errors=...``).
    options: str
    fs_options: str
    #: The mount namespace it was taken from (``mnt:[...]``), once taken.
    namespace: str = ""

    @property
    def readonly(self) -> bool:
        return "ro" in self.options.split(",")


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (``\\040`` for a space) undone."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


MountTable = list[tuple[int, str, str, str, str, str, str]]


def _mounts(pid: str = "self") -> MountTable:
    """(dev, root, mount point, per-mount options, fstype, source, super options) per mount:
    read once per plan, whatever number of paths it looks up (:func:`find`)."""
    entries = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 3:
            continue
        major, minor = fields[2].split(":")
        entries.append((os.makedev(int(major), int(minor)), _unescape(fields[3]),
                        _unescape(fields[4]), fields[5], tail[0], _unescape(tail[1]), tail[2]))
    return entries


def mounts_of(rdev: int) -> list[str]:
    """Where block device ``rdev`` is mounted in this mount namespace."""
    return [point for dev, _, point, *_ in _mounts() if dev == rdev]


def _device_node(rdev: int) -> str | None:
    """/dev/NAME of block device ``rdev``, if it is one."""
    sys_dir = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")
    try:
        uevent = (sys_dir / "uevent").read_text()
    except OSError:
        return None
    name = next((ln[8:] for ln in uevent.splitlines() if ln.startswith("DEVNAME=")), None)
    return f"/dev/{name}" if name else None


def mount_table() -> MountTable:
    """This mount namespace's mounts, for several :func:`find` calls."""
    return _mounts()


def find(path: str, table: MountTable | None = None) -> BlockMount | None:
    """The block-device mount whose root is exactly ``path`` (the topmost one there), or
    None: a directory inside a file system, a bind of a subdirectory, anything not on a
    block device or of a type the guest cannot mount, goes over 9p as before. ``table``
    is :func:`mount_table`'s, read once for many paths."""
    where = os.path.realpath(path)
    found = None
    for dev, root, point, options, fstype, _, super_options in table or _mounts():
        if point == where:
            found = (dev, root, options, fstype, super_options)
    if found is None:
        return None
    dev, root, options, fstype, super_options = found
    if root != "/" or fstype not in GUEST_FILESYSTEMS:
        return None
    device = _device_node(dev)
    if device is None:
        return None
    kept = [o for o in options.split(",") if o in _MOUNT_OPTIONS]
    fs_kept = [o for o in super_options.split(",") if o not in ("rw", "ro")]
    return BlockMount(device, dev, where, fstype, ",".join(kept), ",".join(fs_kept))


def _host(argv: list[str], enter_host: Callable[[], None] | None
          ) -> subprocess.CompletedProcess[str]:
    """Run a util-linux program (mount, umount, findmnt) in the host's mount namespace."""
    return subprocess.run(argv, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, preexec_fn=enter_host)


def _run_host(argv: list[str], enter_host: Callable[[], None] | None) -> str:
    """:func:`_host`; its complaint, or "" when it succeeded."""
    result = _host(argv, enter_host)
    if result.returncode == 0:
        return ""
    return (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]


def _namespace(enter_host: Callable[[], None] | None) -> str:
    """The host's mount namespace (``mnt:[...]``), as seen where ``enter_host`` leads."""
    if enter_host is None:
        return os.readlink("/proc/self/ns/mnt")
    return _host(["readlink", "/proc/self/ns/mnt"], enter_host).stdout.strip()


def _mounted_there(mount: BlockMount, enter_host: Callable[[], None] | None) -> bool:
    """The device is mounted at its place in the host's namespace."""
    found = _host(["findmnt", "-rn", "-o", "MAJ:MIN", "--mountpoint", mount.mount_point],
                  enter_host).stdout.split()
    return f"{os.major(mount.rdev)}:{os.minor(mount.rdev)}" in found


def take(mount: BlockMount, field: str, run_dir: Path, *, readonly: bool,
         enter_host: Callable[[], None] | None = None,
         also: Callable[[], None] | None = None) -> int:
    """Take ``mount`` from the host for a guest (see the module's steps); the device's
    exclusive descriptor, for QEMU. ``field`` names it in errors (``root.path``); ``also``
    unmounts the copies a running VMM's namespace holds."""
    others = [point for point in mounts_of(mount.rdev) if point != mount.mount_point]
    if others:
        raise SandboxError(f"{field}: block device {mount.device} is also mounted at "
                           f"{others[0]}: it must not be in use elsewhere while a guest "
                           "mounts it")
    mount = replace(mount, namespace=_namespace(enter_host))
    _record(run_dir, mount)
    problem = _run_host(["umount", mount.mount_point], enter_host)
    if problem:
        _forget(run_dir, mount)
        raise SandboxError(f"{field}: cannot take block device {mount.device} from the host "
                           f"({problem}): is something using files under "
                           f"{mount.mount_point}?")
    if enter_host is not None and os.path.ismount(mount.mount_point):
        with contextlib.suppress(OSError):  # our own namespace's copy of it
            umount(mount.mount_point, 0)
    if also is not None:
        try:
            also()
        except SandboxError:
            give_back(mount, enter_host)
            _forget(run_dir, mount)
            raise
    flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(mount.device, flags)
    except OSError as exc:
        give_back(mount, enter_host)
        _forget(run_dir, mount)
        raise SandboxError(f"{field}: block device {mount.device} is in use elsewhere "
                           f"({exc.strerror}): another mount namespace or program holds "
                           "it") from None


def give_back(mount: BlockMount, enter_host: Callable[[], None] | None = None,
              wait: float = 2.0) -> bool:
    """Mount ``mount`` again where it was (nothing if it is mounted there already);
    retried for up to ``wait`` s while a dying QEMU still holds the device."""
    deadline = time.monotonic() + wait
    options = ",".join(o for o in (mount.options, mount.fs_options) if o)
    argv = ["mount", "-t", mount.fstype, *(["-o", options] if options else []),
            mount.device, mount.mount_point]
    while True:
        if _mounted_there(mount, enter_host):
            return True
        if os.path.islink(mount.mount_point):  # planted meanwhile: mount(2) would follow it
            return False
        if not _run_host(argv, enter_host):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def recorded(run_dir: Path) -> list[BlockMount]:
    """The block mounts a (perhaps dead) owner took and has not given back yet."""
    return _load(run_dir)


def _load(run_dir: Path) -> list[BlockMount]:
    try:
        return [BlockMount(**entry) for entry in json.loads((run_dir / RECORD).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def _save(run_dir: Path, mounts: list[BlockMount]) -> None:
    atomic_write(run_dir / RECORD, json.dumps([asdict(m) for m in mounts]).encode(), 0o600)


def _record(run_dir: Path, mount: BlockMount) -> None:
    _save(run_dir, [*_load(run_dir), mount])


def _forget(run_dir: Path, mount: BlockMount) -> None:
    _save(run_dir, [m for m in _load(run_dir)
                    if (m.device, m.mount_point) != (mount.device, mount.mount_point)])


def hand_back(run_dir: Path, mount: BlockMount,
              enter_host: Callable[[], None] | None = None) -> None:
    """Give one taken device back now (its disk was unplugged), or leave its record for
    the VM's end if it cannot be mounted yet."""
    if give_back(mount, enter_host):
        _forget(run_dir, mount)


def release(run_dir: Path, enter_host: Callable[[], None] | None = None) -> list[str]:
    """Give back every block mount recorded in ``run_dir`` (its VM is gone); the ones that
    could not be mounted again, or not from here (another mount namespace took them)."""
    failed = []
    mounts = _load(run_dir)
    here = _namespace(enter_host) if mounts else ""
    for mount in mounts:
        if mount.namespace == here and give_back(mount, enter_host):
            _forget(run_dir, mount)
        else:
            failed.append(f"{mount.device} at {mount.mount_point}")
    with contextlib.suppress(OSError):
        if not _load(run_dir):
            (run_dir / RECORD).unlink()
    return failed
