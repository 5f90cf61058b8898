"""The guest's ``/init``: prepare the guest, then serve the host until power-off.

Kept to the few steps that must happen before the first request. Anything
that goes wrong here is printed on the guest console (the host's VM log)
and the VM is reset, so the host sees QEMU exit instead of a silent hang.
"""

from __future__ import annotations

import os
import time

from strongbox.agent import state
from strongbox.agent.handlers import all_handlers
from strongbox.agent.mounts import mount_early
from strongbox.agent.port import find_port, open_port
from strongbox.agent.server import Server, console_log
from strongbox.container._syscalls import (
    MS_BIND,
    MS_MOVE,
    MS_REC,
    RB_AUTOBOOT,
    loopback_up,
    mount,
    reboot,
)

GUEST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


#: Where the initramfs is bound to before becoming the root (a directory in it).
BIND_ROOT = "/sysroot"


def enter_bound_root() -> None:
    """Make the root a bind mount of the initramfs, so containers can pivot_root.

    pivot_root(2) refuses to move away from a namespace's initial root
    mount, and the initramfs *is* that mount. A bind of it, moved on top of
    it and chroot-ed into, is an ordinary mount with a parent; every mount
    namespace copied from here can then pivot_root as on any host. Nothing
    is copied, so this costs no memory and almost no time.
    """
    os.makedirs(BIND_ROOT, exist_ok=True)
    mount("/", BIND_ROOT, None, MS_BIND | MS_REC)
    os.chdir(BIND_ROOT)
    mount(".", "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def main() -> None:
    started = time.clock_gettime(time.CLOCK_BOOTTIME)
    try:
        os.environ.clear()
        os.environ.update(GUEST_ENV)
        os.umask(0o022)
        enter_bound_root()
        mount_early()
        # The VM's own network namespace: a container without a new one (a joined host
        # path, as podman and CRI give, or none at all) lives here, and localhost works.
        loopback_up()
        state.timeline["agent_started_s"] = started
        fd = open_port(find_port())
        state.timeline["port_open_s"] = time.clock_gettime(time.CLOCK_BOOTTIME)
        Server(fd, all_handlers(), console_log).serve()
    except BaseException:
        import traceback  # only now: it costs ~100 ms of boot under emulation

        console_log("agent: fatal error:\n" + traceback.format_exc())
    finally:
        os.sync()
        reboot(RB_AUTOBOOT)
