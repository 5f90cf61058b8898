"""Initrd builds the guest's initramfs: the agent as /init on a pruned CPython.

Contents, and nothing else:

* ``/init`` — a three-line Python script that starts ``strongbox.agent.init``;
* ``/usr/bin/python3.11`` and the shared libraries it and its extension
  modules link, from the Debian packages in ``data/initrd-packages.list``;
* the standard-library modules the agent imports, compiled to sourceless
  ``.pyc`` (found by :mod:`strongbox.guest.pyruntime`);
* the guest-side strongbox packages (agent, container, protocol, oci), also
  compiled; a host-only import there fails the build, which is how the rule
  "the guest imports only the standard library" is enforced;
* ``libseccomp.so.2`` (loaded by the ctypes binding at run time);
* static busybox with its applet links, for debugging;
* ``/dev/console`` so the kernel can give /init its stdio.

The archive is an uncompressed newc cpio: decompression is the slowest part
of unpacking an initramfs under emulation.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

from strongbox.errors import GuestBuildError
from strongbox.guest import debs
from strongbox.guest.assets import Asset, AssetStore
from strongbox.guest.cpio import CpioWriter
from strongbox.guest.progress import Reporter
from strongbox.guest.pyruntime import EXTRA_MODULES, LIBRARY_DIRS, PYTHON, STDLIB, GuestPython

RECIPE = "initrd-recipe-1"
#: Guest-side packages of strongbox (DESIGN.md: standard library only).
GUEST_PACKAGES = ("agent", "container", "protocol", "oci")
#: Top-level modules the guest packages may import (standard library only).
GUEST_MODULES = ("__init__.py", "errors.py", "status.py")
ENTRY_MODULES = ("strongbox.agent.init",)
AGENT_LIBDIR = "usr/lib/strongbox"
#: 1: drop asserts but keep docstrings (dataclasses and enum read them).
OPTIMIZE = 1

INIT_SCRIPT = f"""#!/{PYTHON} -IS
import sys
sys.path.insert(0, "/{AGENT_LIBDIR}")
from strongbox.agent.init import main
main()
"""

ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    "etc/hostname": "strongbox\n",
}
EMPTY_DIRS = ("proc", "sys", "dev", "tmp", "run", "mnt", "root", "etc")


def _package_root() -> Path:
    return Path(str(resources.files("strongbox")))


def _guest_sources() -> list[Path]:
    root = _package_root()
    files = [root / name for name in GUEST_MODULES]
    for package in GUEST_PACKAGES:
        if (root / package).is_dir():
            files.extend(sorted((root / package).rglob("*.py")))
    return files


def inputs_hash(refs: list[debs.DebRef]) -> str:
    """Everything that determines the initrd's bytes."""
    digest = hashlib.sha256()
    digest.update(RECIPE.encode() + INIT_SCRIPT.encode() + str(OPTIMIZE).encode())
    for ref in refs:
        digest.update(f"{ref.filename}:{ref.sha256}\n".encode())
    root = _package_root()
    builder = [root / "guest" / name for name in ("initrd.py", "pyruntime.py", "cpio.py")]
    for path in [*_guest_sources(), *builder]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_initrd(store: AssetStore, build_dir: Path, reporter: Reporter) -> tuple[Asset, bool]:
    """Build (or find cached) the guest initrd. Returns the asset and whether it was built."""
    reporter.phase("resolving guest packages")
    refs = debs.resolve(debs.package_list())
    key = inputs_hash(refs)
    if cached := store.lookup("initrd", key):
        reporter.phase(f"initrd up to date ({cached.path})")
        return cached, False
    started = time.monotonic()
    deb_files = debs.fetch(refs, build_dir / "debs", reporter)
    work = build_dir / "initrd-work"
    shutil.rmtree(work, ignore_errors=True)
    try:
        reporter.phase(f"unpacking {len(deb_files)} guest packages")
        root = work / "debian"
        debs.extract(deb_files, root)
        staging = work / "staging"
        _stage_sources(staging)
        out = work / "initrd.cpio"
        _assemble(root, staging, out, reporter)
        asset = store.install("initrd", key, out, time.monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reporter.phase(f"initrd built in {asset.build_seconds:.0f}s: {asset.path} "
                   f"({asset.size / 1e6:.1f} MB)")
    return asset, True


def _stage_sources(staging: Path) -> None:
    root = _package_root()
    for src in _guest_sources():
        dst = staging / "strongbox" / src.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _assemble(root: Path, staging: Path, out: Path, reporter: Reporter) -> None:
    python = GuestPython(root)
    reporter.phase("finding the modules the agent imports")
    # Every guest module, not only those imported at boot: handlers import the
    # container library lazily, on the first request that needs it.
    guest_modules = sorted(
        ".".join(p.relative_to(staging).with_suffix("").parts).removesuffix(".__init__")
        for p in staging.rglob("*.py")
    )
    modules = python.discover([*ENTRY_MODULES, *guest_modules, *EXTRA_MODULES], staging)
    compiled = root.parent / "compiled"
    jobs: list[tuple[Path, Path, str]] = []
    copies: dict[str, Path] = {}  # path in the guest -> file on the host
    stdlib = root / STDLIB
    # os is frozen into the interpreter but its file is CPython's prefix landmark.
    sources = [(m.origin, m.is_package) for m in modules] + [(str(stdlib / "os.py"), False)]
    for origin, _ in sources:
        path = Path(origin)
        if path.is_relative_to(staging):
            guest = Path(AGENT_LIBDIR) / path.relative_to(staging)
        elif path.is_relative_to(root):
            guest = path.relative_to(root)
        else:
            raise GuestBuildError(f"guest module from outside the guest packages: {origin}")
        if path.suffix == ".py":
            pyc = guest.with_suffix(".pyc")
            jobs.append((path, compiled / pyc, "/" + str(guest)))
            copies[str(pyc)] = compiled / pyc
        else:
            copies[str(guest)] = path
    reporter.phase(f"compiling {len(jobs)} modules")
    python.compile(jobs, staging, OPTIMIZE)

    seccomp = sorted((root / LIBRARY_DIRS[1]).glob("libseccomp.so.2*"))
    if not seccomp:
        raise GuestBuildError("libseccomp2 did not provide libseccomp.so.2")
    elves = [root / PYTHON, *[p for p in copies.values() if p.suffix == ".so"], *seccomp]
    loader = root / "lib64/ld-linux-x86-64.so.2"
    for lib in python.needed_libraries(elves) | set(seccomp) | {loader}:
        _add_with_links(copies, root, lib)
    copies[PYTHON] = root / PYTHON
    copies["bin/busybox"] = root / "bin/busybox"

    reporter.phase(f"writing initrd ({len(copies)} files)")
    with out.open("wb") as f:
        cpio = CpioWriter(f)
        for d in EMPTY_DIRS:
            cpio.add_dir(d)
        cpio.add_dir("tmp", 0o1777)
        cpio.add_char_device("dev/console", 5, 1, 0o600)
        cpio.add_char_device("dev/null", 1, 3, 0o666)
        cpio.add_file("init", INIT_SCRIPT.encode(), 0o755)
        for name, text in ETC_FILES.items():
            cpio.add_file(name, text.encode())
        for guest_path in sorted(copies):
            host = copies[guest_path]
            if host.is_symlink():
                cpio.add_symlink(guest_path, str(host.readlink()))
            else:
                mode = 0o755 if host.stat().st_mode & 0o111 else 0o644
                cpio.add_file(guest_path, host.read_bytes(), mode)
        cpio.add_symlink("usr/bin/python3", "python3.11")
        for applet in _busybox_applets(root / "bin/busybox"):
            if f"bin/{applet}" not in copies and applet != "busybox":
                cpio.add_symlink(f"bin/{applet}", "busybox")
        cpio.close()


def _add_with_links(copies: dict[str, Path], root: Path, lib: Path) -> None:
    """Copy a library, keeping the symlink chain that leads to it."""
    path = lib
    for _ in range(8):
        copies[str(path.relative_to(root))] = path
        if not path.is_symlink():
            return
        target = path.readlink()
        path = (root / str(target).lstrip("/")) if target.is_absolute() else path.parent / target


def _busybox_applets(busybox: Path) -> list[str]:
    proc = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GuestBuildError(f"{busybox} --list failed: {proc.stderr.strip()}")
    return sorted(set(proc.stdout.split()))
