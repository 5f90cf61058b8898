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
from strongbox.container._syscalls import RB_AUTOBOOT, reboot

GUEST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


def main() -> None:
    started = time.clock_gettime(time.CLOCK_BOOTTIME)
    try:
        os.environ.clear()
        os.environ.update(GUEST_ENV)
        os.umask(0o022)
        mount_early()
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
