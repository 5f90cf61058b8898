"""Driver launches one QEMU process per guest and guarantees it does not outlive us.

Lifetime rules:

* QEMU runs in its own session (terminal signals go to strongbox, which
  shuts the guest down in order) with ``PR_SET_PDEATHSIG=SIGKILL``: if the
  process that launched it dies, even by SIGKILL, the kernel kills QEMU.
* Its pid is written to the run directory so that a later cleanup can find
  it (see :mod:`strongbox.sandbox.rundir`).
* QMP, the agent channel and the console are socketpairs: QEMU inherits one
  end of each, so there are no socket files to leak and no path-length limits.
* QEMU writes no file the guest can grow: the console and QEMU's stderr go
  through :class:`~strongbox.hypervisor.cappedlog.Recorder` threads into
  ``console.log`` and ``qemu.log``, each capped at ``log_cap`` bytes.
* QEMU's own seccomp filter is always on (:data:`~.cmdline.SECCOMP`).
* With a jail (:mod:`strongbox.hypervisor.jailer`) the spawned process is
  the jail's waiter and QEMU its child: ``pid`` is what we wait for and
  kill, ``vmm_pid`` the real QEMU (for setns, the pid file, containerd).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from strongbox.errors import HypervisorError, HypervisorNotFound
from strongbox.hypervisor.base import (
    Accelerator,
    ChildSetup,
    DiskSpec,
    Eject,
    NicSpec,
    VMSpec,
    exits_within,
    log_tail,
)
from strongbox.hypervisor.cappedlog import Recorder
from strongbox.hypervisor.jailer import Jail, JailPolicy
from strongbox.hypervisor.qemu import migration
from strongbox.hypervisor.qemu.cmdline import MICROVM, build_argv
from strongbox.hypervisor.qemu.hotplug import UNPLUG_TIMEOUT, Hotplug
from strongbox.hypervisor.qemu.machine import Machine
from strongbox.hypervisor.qemu.qmp import Monitor

_PR_SET_PDEATHSIG = 1
#: Debian's SeaBIOS images (QEMU's firmware path has them): what a q35 guest starts from.
SEABIOS = "/usr/share/seabios"
_libc = ctypes.CDLL(None, use_errno=True)


def _prepare_child(parent: int, setup: ChildSetup | None, error_fd: int) -> None:
    """Runs in the child between fork and exec; a failure is reported on ``error_fd``."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    if setup is not None:
        try:
            setup()
        except Exception as exc:
            os.write(error_fd, str(exc).encode()[:1000])
            raise


def _in_order(first: ChildSetup | None, then: ChildSetup) -> None:
    if first is not None:
        first()
    then()


def find_qemu(path: str) -> str:
    resolved = shutil.which(path)
    if resolved is None:
        raise HypervisorNotFound(
            f"QEMU not found: {path!r} (install qemu-system-x86 or set hypervisor.qemu.path)"
        )
    return resolved


class QemuVM:
    """A QEMU guest (``microvm`` or ``q35``): launch, QMP, stop, kill (a :class:`~.base.VM`)."""

    def __init__(self, spec: VMSpec, accel: Accelerator, qemu: str = "qemu-system-x86_64",
                 tcg_tb_size_mib: int = 64, child_setup: ChildSetup | None = None,
                 jail: JailPolicy | None = None, log_cap: int = 1 << 20,
                 machine: Machine = MICROVM) -> None:
        self.spec = spec
        self.machine = machine
        self.child_setup = child_setup
        self.jail_policy = jail
        self.jail: Jail | None = None
        #: The QEMU process itself (the spawned process, or the jail's child).
        self.vmm_pid = 0
        self.accel = accel
        self.qemu = qemu
        self.tcg_tb_size_mib = tcg_tb_size_mib
        self.process: asyncio.subprocess.Process | None = None
        self.monitor = Monitor(f"strongbox-{spec.name}")
        self.hotplug = Hotplug(self.monitor, machine)
        self.agent_socket: socket.socket | None = None
        self.launched_at = 0.0
        self.qmp_ready_at = 0.0
        self.running_at = 0.0
        self.returncode: int | None = None
        #: Bytes each of console.log and qemu.log may hold.
        self.log_cap = log_cap
        self._recorders: list[Recorder] = []

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    @property
    def qemu_log(self) -> os.PathLike[str]:
        return self.spec.run_dir / "qemu.log"

    async def start(self, timeout: float = 10.0) -> None:
        """Launch QEMU paused, connect QMP, then let the guest run."""
        binary = find_qemu(self.qemu)
        for path, what in ((self.spec.kernel, "kernel"), (self.spec.initrd, "initrd")):
            if not os.path.isfile(path):
                raise HypervisorError(f"guest {what} {path}: no such file")
        qmp_host, qmp_guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        agent_host, agent_guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console_host, console_guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._recorders.append(Recorder(console_host.detach(), self.spec.console_log,
                                        self.log_cap))
        argv = build_argv(binary, self.spec, self.accel, qmp_fd=qmp_guest.fileno(),
                          agent_fd=agent_guest.fileno(), console_fd=console_guest.fileno(),
                          tcg_tb_size_mib=self.tcg_tb_size_mib, machine=self.machine)
        setup, env = self.child_setup, None
        if self.jail_policy is not None:
            try:
                self.jail = Jail.prepare(self.spec.run_dir, self.spec.name,
                                         memory_mib=self.spec.memory_mib,
                                         expose=self._jail_paths(binary),
                                         kvm=self.accel.name == "kvm", policy=self.jail_policy,
                                         own_cgroup=not self.spec.host_cgroup)
            except HypervisorError:
                for sock in (qmp_host, qmp_guest, agent_host, agent_guest, console_guest):
                    sock.close()
                self._stop_recorders()
                raise
            setup = functools.partial(_in_order, self.child_setup, self.jail.child_setup)
            env = self.jail.env
        error_r, error_w = os.pipe2(os.O_CLOEXEC)
        stderr_r, stderr_w = os.pipe2(os.O_CLOEXEC)
        self._recorders.append(Recorder(stderr_r, Path(self.qemu_log), self.log_cap))
        try:
            self.launched_at = time.monotonic()
            self.process = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=stderr_w, stderr=stderr_w,
                pass_fds=(qmp_guest.fileno(), agent_guest.fileno(), console_guest.fileno(),
                          *self._extra_fds()),
                preexec_fn=functools.partial(_prepare_child, os.getpid(), setup, error_w),
                start_new_session=True, env=env,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(error_w)
            error_w = -1
            detail = os.read(error_r, 1000).decode(errors="replace")
            qmp_host.close()
            agent_host.close()
            self._stop_recorders()
            if self.jail is not None:
                self.jail.cleanup()
            reason = detail or getattr(exc, "strerror", None) or str(exc)
            raise HypervisorError(f"cannot start QEMU: {reason}") from exc
        finally:
            for sock in (qmp_guest, agent_guest, console_guest):
                sock.close()
            os.close(stderr_w)
            os.close(error_r)
            if error_w >= 0:
                os.close(error_w)
        self.agent_socket = agent_host
        try:
            self.vmm_pid = (self.jail.vmm_pid(self.process.pid) if self.jail is not None
                            else self.process.pid)
            (self.spec.run_dir / "qemu.pid").write_text(f"{self.vmm_pid}\n")
            await self.monitor.connect(qmp_host, timeout)
        except HypervisorError:
            await self._reap_after_failure()
            raise HypervisorError(f"QEMU failed to start: {self.failure_reason()}") from None
        self.qmp_ready_at = time.monotonic()
        try:
            if self.spec.incoming and self.spec.state_fd is not None:
                await migration.load_state(self.monitor, self.spec.state_fd, timeout)
            await self.monitor.execute("cont", timeout=timeout)
        except HypervisorError:
            await self._reap_after_failure()
            raise
        self.running_at = time.monotonic()

    def _jail_paths(self, binary: str) -> list[tuple[str, bool]]:
        """The host paths on QEMU's command line, for the jail: (path, writable)."""
        spec = self.spec
        paths = [(binary, False), (str(spec.kernel), False), (str(spec.initrd), False)]
        if spec.share_dir is not None:
            paths.append((str(spec.share_dir), True))
        if spec.memory_file is not None:
            paths.append((str(spec.memory_file), True))  # QEMU opens it read-write either way
        if self.machine.pci and os.path.isdir(SEABIOS):
            paths.append((SEABIOS, False))  # q35 starts SeaBIOS (bios-256k.bin)
        return paths

    async def _release_jail(self, timeout: float = 5.0) -> None:
        """Remove the jail's cgroup once QEMU (which may still be dying) has left it."""
        assert self.jail is not None
        deadline = time.monotonic() + timeout
        while not self.jail.cleanup() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _extra_fds(self) -> tuple[int, ...]:
        """Descriptors QEMU inherits besides its channels: taps (and vhost) of its NICs, its
        disks, a clone's device state."""
        fds = [fd for nic in self.spec.nics for fd in (nic.tap_fd, nic.vhost_fd)
               if fd is not None]
        fds += [disk.fd for disk in self.spec.disks]
        if self.spec.state_fd is not None and self.spec.incoming:
            fds.append(self.spec.state_fd)
        return tuple(fds)

    async def save_state(self, timeout: float = 60.0) -> None:
        """Pause the guest and write its device state to ``spec.state_fd``.

        RAM is not copied: it is in the memory file already.
        """
        if self.spec.state_fd is None:
            raise HypervisorError("this VM was started without a state file")
        await migration.save_state(self.monitor, self.spec.state_fd, timeout)

    async def _reap_after_failure(self) -> None:
        self.kill()
        await self.wait()

    def _stop_recorders(self) -> None:
        for recorder in self._recorders:
            recorder.stop()
        self._recorders.clear()

    def failure_reason(self) -> str:
        """QEMU's last complaint, for error messages."""
        if self.returncode is not None:
            for recorder in self._recorders:
                recorder.join(1.0)  # QEMU is gone: what it said is on its way to the file
        try:
            with open(self.qemu_log, "rb") as f:
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
        except OSError:
            lines = []
        lines = [ln for ln in lines if ln]
        if lines:
            return lines[-1].removeprefix(f"{self.qemu}: ")
        if self.returncode is not None:
            return f"exited with status {self.returncode}"
        return "no error output"

    async def add_disk(self, disk: DiskSpec, timeout: float = 10.0) -> None:
        await self.hotplug.add_disk(disk, timeout)

    async def remove_disk(self, serial: str, timeout: float = UNPLUG_TIMEOUT,
                          eject: Eject | None = None) -> None:
        await self.hotplug.remove_disk(serial, timeout, eject)

    async def add_nic(self, nic: NicSpec, timeout: float = 10.0) -> None:
        await self.hotplug.add_nic(nic, timeout)

    async def remove_nic(self, mac: str, timeout: float = UNPLUG_TIMEOUT,
                         eject: Eject | None = None) -> None:
        await self.hotplug.remove_nic(mac, timeout, eject)

    def console_tail(self, lines: int = 5) -> list[str]:
        return log_tail(self.spec.console_log, lines)

    def namespace_fd(self) -> int:
        if not self.vmm_pid:
            raise ProcessLookupError("QEMU is not running")
        return os.pidfd_open(self.vmm_pid)

    async def wait(self) -> int:
        if self.process is None:
            return 0
        self.returncode = await self.process.wait()
        if self.jail is not None:
            await self._release_jail()
        return self.returncode

    async def wait_exit(self, timeout: float) -> bool:
        """True when QEMU exited within ``timeout``."""
        return await exits_within(self.wait, timeout)

    async def stop(self, timeout: float = 5.0) -> int:
        """Ask QEMU to quit over QMP, and kill it if it does not within ``timeout``."""
        if self.process is None or self.process.returncode is not None:
            return await self.wait()
        try:
            await self.monitor.execute("quit", timeout=timeout)
        except HypervisorError:
            pass  # QEMU may exit before it answers
        if not await self.wait_exit(timeout):
            self.kill()
        return await self.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass

    async def close(self) -> None:
        """Release host-side handles (after the process is gone)."""
        await self.monitor.disconnect()
        if self.agent_socket is not None:
            self.agent_socket.close()
            self.agent_socket = None
        for recorder in self._recorders:
            recorder.join(1.0)  # the last words of a VMM that just exited
        self._stop_recorders()
