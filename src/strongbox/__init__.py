"""strongbox: a secure container runtime where every container runs in its own microVM.

This top-level module is imported inside the guest too, so it must stay
standard-library only and cheap to import: the SDK's names (``strongbox.Sandbox``,
``strongbox.RunResult``...) are looked up in :mod:`strongbox.sdk` on first use.
"""

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from strongbox.sdk import FileInfo as FileInfo
    from strongbox.sdk import Files as Files
    from strongbox.sdk import Process as Process
    from strongbox.sdk import RunResult as RunResult
    from strongbox.sdk import Sandbox as Sandbox
    from strongbox.sdk import SandboxInfo as SandboxInfo

_SDK_NAMES = ("Sandbox", "SandboxInfo", "Process", "RunResult", "FileInfo", "Files")


def __getattr__(name: str) -> object:
    if name in _SDK_NAMES:
        import importlib

        return getattr(importlib.import_module("strongbox.sdk"), name)
    raise AttributeError(f"module 'strongbox' has no attribute {name!r}")
