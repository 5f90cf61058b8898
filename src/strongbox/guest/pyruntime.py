"""Pyruntime picks the slice of Debian's CPython that the agent actually uses.

The guest interpreter is the one unpacked from Debian's packages, so the
builder asks *it* (run on the host through the unpacked dynamic loader,
never the host's own Python) which modules importing the agent loads, then
compiles exactly those to sourceless ``.pyc`` files with that same
interpreter. Shared libraries come from the loader's own ``--list``, so
nothing the interpreter or an extension module links is forgotten.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from strongbox.errors import GuestBuildError

PYTHON = "usr/bin/python3.11"
STDLIB = "usr/lib/python3.11"
LOADER = "lib64/ld-linux-x86-64.so.2"
LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")

#: Modules the agent needs that no import statement at module level names:
#: the codecs CPython loads at start-up in the guest's locale, and modules
#: imported lazily (kept off the boot path on purpose).
EXTRA_MODULES = (
    "encodings.utf_8",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.aliases",
    "strongbox.container._libseccomp",
    "traceback",  # imported only when the agent dies, to say why on the console
)

_DISCOVER = r"""
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
out = {}
for name, mod in sorted(sys.modules.items()):
    spec = getattr(mod, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec else None
    out[name] = [origin, bool(spec and spec.submodule_search_locations)]
print(json.dumps(out))
"""

_COMPILE = r"""
import json, py_compile, sys
for src, dst, shown in json.loads(sys.stdin.read()):
    py_compile.compile(src, cfile=dst, dfile=shown, doraise=True,
                       optimize=int(sys.argv[1]),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


@dataclass(frozen=True)
class Module:
    """A module the agent imports and where its code comes from."""

    name: str
    origin: str
    is_package: bool


class GuestPython:
    """The unpacked Debian interpreter, runnable on the host."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for rel in (PYTHON, LOADER):
            if not (root / rel).exists():
                raise GuestBuildError(f"guest packages lack {rel}: check initrd-packages.list")

    def _argv(self, binary: str) -> list[str]:
        libs = ":".join(str(self.root / d) for d in LIBRARY_DIRS)
        return [str(self.root / LOADER), "--library-path", libs, str(self.root / binary)]

    def run(self, args: list[str], source_path: Path, stdin: str | None = None) -> str:
        env = {"PYTHONHOME": str(self.root / "usr"), "PYTHONPATH": str(source_path),
               "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C", "PATH": os.environ.get("PATH", "")}
        proc = subprocess.run([*self._argv(PYTHON), "-S", "-s", *args], input=stdin, env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise GuestBuildError(f"guest python failed: {last}")
        return proc.stdout

    def discover(self, entry_modules: list[str], source_path: Path) -> list[Module]:
        """Every module loaded after importing ``entry_modules``."""
        out = self.run(["-c", _DISCOVER, json.dumps(entry_modules)], source_path)
        modules = []
        for name, (origin, is_package) in json.loads(out).items():
            if origin and origin not in ("built-in", "frozen"):
                modules.append(Module(name, origin, is_package))
        return modules

    def compile(self, jobs: list[tuple[Path, Path, str]], source_path: Path,
                optimize: int) -> None:
        """Compile (source, .pyc, path shown in tracebacks) triples to sourceless .pyc files."""
        for _, dst, _ in jobs:
            dst.parent.mkdir(parents=True, exist_ok=True)
        # Without column tables the .pyc files are smaller and unmarshal faster.
        self.run(["-X", "no_debug_ranges", "-c", _COMPILE, str(optimize)], source_path,
                 stdin=json.dumps([[str(s), str(d), shown] for s, d, shown in jobs]))

    def needed_libraries(self, binaries: list[Path]) -> set[Path]:
        """Shared libraries (inside the root) that these ELF files load."""
        libs: set[Path] = set()
        libpath = ":".join(str(self.root / d) for d in LIBRARY_DIRS)
        for binary in binaries:
            proc = subprocess.run([str(self.root / LOADER), "--list", "--library-path", libpath,
                                   str(binary)], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise GuestBuildError(f"cannot list libraries of {binary.name}: "
                                      f"{proc.stderr.strip() or proc.stdout.strip()}")
            for line in proc.stdout.splitlines():
                parts = line.split("=>")
                target = parts[-1].strip().split(" (")[0].strip()
                if "not found" in line:
                    raise GuestBuildError(f"{binary.name} needs {parts[0].strip()}, "
                                          "which no guest package provides")
                if target.startswith(str(self.root)):
                    libs.add(Path(target))
        return libs
