"""The shape every VMM driver has: a VM description in, a running VM out."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class VMSpec:
    """Everything needed to launch one guest, independent of the VMM."""

    name: str
    kernel: Path
    initrd: Path
    memory_mib: int
    vcpus: int
    #: Directory for the VM's files (console log, VMM log, pid file).
    run_dir: Path
    #: Extra kernel command-line parameters.
    kernel_params: tuple[str, ...] = ()
    #: Full kernel log on the console instead of ``quiet``.
    debug: bool = False
    #: Name of the virtio-serial port the agent listens on.
    agent_port: str = "strongbox.agent"
    #: Host directory exported to the guest over virtio-9p (tag ``share_tag``).
    share_dir: Path | None = None
    share_tag: str = "sbshare"
    #: Guest RAM in this file (a VM template's memory) instead of anonymous memory.
    memory_file: Path | None = None
    #: True: writes go to the file (creating a template); False: private
    #: copy-on-write mapping of it (a clone shares the template's pages).
    memory_shared: bool = False
    #: A device-state file QEMU inherits: read by a clone (``incoming``), written
    #: when saving a template.
    state_fd: int | None = None
    #: Start paused and load device state from ``state_fd`` (a clone of a template).
    incoming: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"


class VM(Protocol):
    """A launched guest. ``agent_socket`` is the host end of the agent channel."""

    pid: int
    agent_socket: socket.socket

    async def start(self) -> None: ...

    async def stop(self, timeout: float) -> int: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...

    def console_tail(self, lines: int = 5) -> list[str]: ...
