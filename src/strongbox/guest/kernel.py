"""Kernel builds the slim microVM guest kernel from Debian's ``linux-source-6.1``.

Recipe: ``make tinyconfig`` (the smallest kernel that boots), merge the
checked-in fragment ``data/kernel.config`` over it, ``make olddefconfig``,
then verify that every option of the fragment survived: Kconfig silently
drops an option whose dependencies are missing, and a kernel without, say,
9p would only fail much later, inside a container. ``make vmlinux`` builds
the uncompressed ELF that QEMU boots through its PVH entry point; it is
stripped of symbols (QEMU loads only the program segments).

The source tree stays under the build directory so that a rebuild after a
fragment change is incremental. The asset is keyed by the fragment, the
source package version and :data:`RECIPE`; bump the recipe when the build
steps change in a way that changes the output.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

from strongbox.errors import GuestBuildError
from strongbox.guest.assets import Asset, AssetStore
from strongbox.guest.progress import Reporter

SOURCE_PACKAGE = "linux-source-6.1"
SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
RECIPE = "kernel-recipe-1:tinyconfig+fragment:x86_64:vmlinux:strip-all"
#: Lines `make vmlinux` prints for a full build of this fragment (for the bar).
FULL_BUILD_STEPS = 1520
_STEP = re.compile(r"^\s{2}[A-Z][A-Z0-9_]+\s")
_OPTION = re.compile(r"^(CONFIG_\w+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_\w+) is not set$")


def fragment_text() -> str:
    return resources.files("strongbox.guest").joinpath("data/kernel.config").read_text()


def source_version() -> str:
    """Version of the installed kernel source package, or a clear error."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", SOURCE_PACKAGE],
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError as exc:
        raise GuestBuildError("dpkg-query not found: the guest build needs Debian") from exc
    if out.returncode != 0 or not out.stdout or not SOURCE_TARBALL.is_file():
        raise GuestBuildError(
            f"{SOURCE_PACKAGE} is not installed ({SOURCE_TARBALL} missing): run `make setup`"
        )
    return out.stdout.strip()


def inputs_hash() -> str:
    digest = hashlib.sha256()
    for part in (RECIPE, source_version(), fragment_text()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def parse_config(text: str) -> dict[str, str]:
    """Kconfig options as name -> value, with ``is not set`` read as ``n``."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _OPTION.match(line):
            options[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            options[m.group(1)] = "n"
    return options


def missing_options(fragment: str, final: str) -> list[str]:
    """Fragment options whose value did not survive ``olddefconfig``."""
    wanted = parse_config(fragment)
    got = parse_config(final)
    return [f"{k}={v} (got {got.get(k, 'n')})" for k, v in wanted.items() if got.get(k, "n") != v]


def build_kernel(store: AssetStore, build_dir: Path, reporter: Reporter,
                 jobs: int | None = None) -> tuple[Asset, bool]:
    """Build (or find cached) the guest kernel. Returns the asset and whether it was built."""
    key = inputs_hash()
    if cached := store.lookup("kernel", key):
        reporter.phase(f"kernel up to date ({cached.path})")
        return cached, False
    started = time.monotonic()
    tree = _source_tree(build_dir, reporter)
    log = build_dir / "kernel-build.log"
    _configure(tree, log, reporter)
    _compile(tree, log, reporter, jobs or os.cpu_count() or 1)
    stripped = build_dir / "vmlinux.stripped"
    _run(["strip", "--strip-all", "-o", str(stripped), str(tree / "vmlinux")], tree, log,
         "strip vmlinux")
    asset = store.install("kernel", key, stripped, time.monotonic() - started)
    reporter.phase(f"kernel built in {asset.build_seconds:.0f}s: {asset.path} "
                   f"({asset.size / 1e6:.1f} MB)")
    return asset, True


def _source_tree(build_dir: Path, reporter: Reporter) -> Path:
    version = source_version()
    tree = build_dir / SOURCE_PACKAGE
    marker = tree / f".strongbox-extracted-{version}"
    if marker.exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    build_dir.mkdir(parents=True, exist_ok=True)
    reporter.phase(f"extracting {SOURCE_TARBALL.name} ({version})")
    proc = subprocess.run(["tar", "-xf", str(SOURCE_TARBALL), "-C", str(build_dir)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(tree, ignore_errors=True)
        raise GuestBuildError(f"extracting {SOURCE_TARBALL} failed: {proc.stderr.strip()}")
    marker.touch()
    return tree


def _make_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ARCH="x86_64", KBUILD_BUILD_USER="strongbox", KBUILD_BUILD_HOST="strongbox",
               KBUILD_BUILD_TIMESTAMP="1970-01-01", LC_ALL="C")
    return env


def _configure(tree: Path, log: Path, reporter: Reporter) -> None:
    reporter.phase("configuring kernel (tinyconfig + strongbox fragment)")
    fragment = fragment_text()
    frag_file = tree / "strongbox.config"
    frag_file.write_text(fragment)
    _run(["make", "ARCH=x86_64", "tinyconfig"], tree, log, "make tinyconfig")
    _run(["scripts/kconfig/merge_config.sh", "-m", ".config", str(frag_file)], tree, log,
         "merge kernel config fragment")
    _run(["make", "ARCH=x86_64", "olddefconfig"], tree, log, "make olddefconfig")
    missing = missing_options(fragment, (tree / ".config").read_text())
    if missing:
        raise GuestBuildError("kernel config fragment not satisfied: " + ", ".join(missing))


def _compile(tree: Path, log: Path, reporter: Reporter, jobs: int) -> None:
    steps_file = tree / ".strongbox-steps"
    try:
        estimate = int(steps_file.read_text())
    except (OSError, ValueError):
        estimate = FULL_BUILD_STEPS
    steps = 0
    tail: list[str] = []
    with log.open("a") as log_file, reporter.task(f"compiling kernel (make -j{jobs})",
                                                  estimate) as task:
        proc = subprocess.Popen(
            ["make", "ARCH=x86_64", f"-j{jobs}", "vmlinux"], cwd=tree, env=_make_env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            tail = [*tail[-19:], line.rstrip()]
            if _STEP.match(line):
                steps += 1
                task.advance(1, line.split()[-1])
        rc = proc.wait()
    if rc != 0:
        last = next((t for t in reversed(tail) if "rror" in t), tail[-1] if tail else "")
        raise GuestBuildError(f"kernel build failed (make exited {rc}): {last.strip()} "
                              f"(full log: {log})")
    if steps > FULL_BUILD_STEPS // 2:
        steps_file.write_text(str(steps))


def _run(argv: list[str], cwd: Path, log: Path, what: str) -> None:
    with log.open("a") as log_file:
        log_file.write(f"$ {' '.join(argv)}\n")
        log_file.flush()
        try:
            proc = subprocess.run(argv, cwd=cwd, env=_make_env(), stdout=log_file,
                                  stderr=subprocess.STDOUT, check=False)
        except FileNotFoundError as exc:
            raise GuestBuildError(f"{what}: {argv[0]} not found (run `make setup`)") from exc
    if proc.returncode != 0:
        raise GuestBuildError(f"{what} failed (exit {proc.returncode}); see {log}")
