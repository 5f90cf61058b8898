"""Finding and opening the virtio-serial port the host talks to the agent on."""

from __future__ import annotations

import os
import time

#: Name given to the port on QEMU's command line (``virtserialport,name=``).
AGENT_PORT_NAME = "strongbox.agent"
_PORTS = "/sys/class/virtio-ports"


def find_port(name: str = AGENT_PORT_NAME, timeout: float = 10.0) -> str:
    """The /dev path of the named port.

    Ports are announced by the device after the driver binds, which under
    emulation may happen a little after PID 1 starts: poll briefly.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            for entry in sorted(os.listdir(_PORTS)):
                try:
                    with open(f"{_PORTS}/{entry}/name") as f:
                        if f.read().strip() == name:
                            return f"/dev/{entry}"
                except OSError:
                    continue
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"virtio-serial port {name!r} not found in {_PORTS}")
        time.sleep(0.005)


def open_port(path: str, timeout: float = 5.0) -> int:
    """Open the port non-blocking; devtmpfs may create the node a moment late."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
