"""The strongbox error tree: every failure a user can see is one of these.

    StrongboxError
     ├── ConfigError              a configuration value or argument is wrong
     ├── AssetError               a guest kernel/initrd is missing or unusable
     ├── GuestBuildError          building the guest kernel or initrd failed
     ├── StateDirError            a state or run directory cannot be used
     ├── HypervisorError          QEMU could not be started or died
     │    └── HypervisorNotFound  the QEMU binary is not installed
     ├── AgentError               talking to the guest agent failed
     │    ├── AgentTimeout        the agent did not answer in time
     │    ├── AgentClosed         we shut the connection down (expected)
     │    ├── AgentBroken         the VM or agent died under us (unexpected)
     │    └── AgentRequestError   the agent answered with an error
     ├── SandboxError             a sandbox-level operation failed
     │    ├── ContainerStartError the container's process could not start
     │    ├── SandboxTimeout      the SDK's timeout ended what it bounded (killed)
     │    ├── SandboxNotFound     the SDK names a sandbox that does not exist or ended
     │    └── SandboxFileError    an SDK file operation failed in the sandbox (errno)
     ├── ContainerNotFound        no container with that id
     ├── ContainerExists          the id is taken
     └── ContainerStateError      wrong state for the operation (current, required)

The command line prints ``str(error)`` as one line and exits non-zero, so
every message names what was wrong and what was expected. Foreign errors
(OSError, QMP errors) are translated at the boundary of the layer that met
them, with ``raise ... from exc`` to keep the cause for ``--debug``.

Standard library only: guest-side code may import it.
"""

from __future__ import annotations


class StrongboxError(Exception):
    """Root of every error strongbox raises on purpose."""


class ConfigError(StrongboxError):
    """A configuration value, command-line argument or spec field is invalid."""


class AssetError(StrongboxError):
    """A guest asset (kernel, initrd) is missing, unreadable or stale."""


class GuestBuildError(StrongboxError):
    """Building a guest asset failed; the message says which step."""


class StateDirError(StrongboxError):
    """A state or run directory cannot be created, written or locked."""


class HypervisorError(StrongboxError):
    """The VMM could not be started, refused a command, or exited early."""


class HypervisorNotFound(HypervisorError):
    """The configured VMM binary does not exist or is not executable."""


class AgentError(StrongboxError):
    """Talking to the guest agent failed."""


class AgentTimeout(AgentError):
    """The agent did not answer within the configured time."""


class AgentClosed(AgentError):
    """The connection was closed by us; further requests are refused."""


class AgentBroken(AgentError):
    """The agent connection died or the agent broke the protocol."""


class AgentRequestError(AgentError):
    """The agent executed a request and reported an error.

    ``code`` is one of the protocol's error codes (``protocol.messages.E_*``)
    so callers can branch on it without parsing messages.
    """

    def __init__(self, method: str, code: str, message: str,
                 data: dict[str, object] | None = None) -> None:
        super().__init__(f"agent {method}: {message}")
        self.method = method
        self.code = code
        self.remote_message = message
        self.data = data or {}


class SandboxError(StrongboxError):
    """A sandbox-level operation failed."""


class ContainerStartError(SandboxError):
    """The container's process could not be started (e.g. exec failed).

    ``exit_code`` is what a runc-compatible runtime exits with: 127 when the
    executable was not found, 126 when it could not be executed, else 1.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SandboxTimeout(SandboxError):
    """A timeout of the SDK expired: what it bounded was killed. ``stdout`` and ``stderr``
    hold the output that came before (an exec's), ``timeout_s`` the limit."""

    def __init__(self, message: str, timeout_s: float, stdout: bytes = b"",
                 stderr: bytes = b"") -> None:
        super().__init__(message)
        self.timeout_s, self.stdout, self.stderr = timeout_s, stdout, stderr


class SandboxNotFound(SandboxError):
    """No SDK sandbox with this id is running (never created, closed, or ended)."""


class SandboxFileError(SandboxError):
    """A file operation failed inside the sandbox; ``errno`` says why (ENOENT, EISDIR...)."""

    def __init__(self, message: str, errno: int, path: str) -> None:
        super().__init__(message)
        self.errno, self.path = errno, path


class ContainerNotFound(StrongboxError):
    """No container with this id exists under the runtime root."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} does not exist")
        self.container_id = container_id


class ContainerExists(StrongboxError):
    """A container with this id already exists under the runtime root."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} already exists")
        self.container_id = container_id


class ContainerStateError(StrongboxError):
    """The container is in the wrong state for the operation.

    ``current`` is its status, ``required`` the statuses the operation needs
    (from the one transition table, :mod:`strongbox.status`).
    """

    def __init__(self, current: str, required: tuple[str, ...], *, container_id: str = "",
                 operation: str = "", message: str | None = None) -> None:
        need = " or ".join(required)
        what = f"container {container_id}" if container_id else "the container"
        super().__init__(message or f"cannot {operation or 'do that to'} {what}: it is "
                         f"{current}, not {need}")
        self.container_id = container_id
        self.operation = operation
        self.current = current
        self.required = required
