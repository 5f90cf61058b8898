"""Terminal mode: the pty slave is the controlling tty and /dev/console."""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from pathlib import Path
from typing import Any

from strongbox.container.launcher import LaunchRequest, launch
from tests.integration.container.runner import finish, shell


def test_terminal_is_controlling_tty_and_console(spec: dict[str, Any],
                                                 shared_rootfs: Path) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    spec["process"]["terminal"] = True
    script = ("tty; stty size; test -c /dev/console && echo console; "
              "cat /proc/self/stat | cut -d' ' -f6,7")
    try:
        launched = launch(LaunchRequest(container_id="t", spec=shell(spec, script),
                                        rootfs=str(shared_rootfs), stdio=(slave, slave, slave),
                                        terminal=True))
    finally:
        os.close(slave)
    result = finish(launched, {master: b""}, 10)
    lines = result.stdout.replace("\r", "").splitlines()
    assert lines[0] in ("/dev/console",) or lines[0].startswith("/dev/pts/"), lines
    assert lines[1:3] == ["33 101", "console"]
    session, tty_nr = lines[3].split()
    assert session == "1" and tty_nr != "0"  # own session, with a controlling terminal
    assert result.exit_code == 0
