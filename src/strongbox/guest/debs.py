"""Debs fetches Debian packages for the guest and unpacks them, without installing.

``apt-get download --print-uris`` names the exact files (and SHA-256 sums)
the host's package lists would give; those names go into the initrd's input
hash, so a security update of, say, libc6 rebuilds the initrd. Downloads are
cached by file name and verified against the sums.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from strongbox.errors import GuestBuildError
from strongbox.guest.assets import file_sha256
from strongbox.guest.progress import Reporter

_URI_LINE = re.compile(
    r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class DebRef:
    """One package file as the package lists describe it."""

    package: str
    filename: str
    size: int
    sha256: str


def package_list() -> list[str]:
    text = resources.files("strongbox.guest").joinpath("data/initrd-packages.list").read_text()
    return [line.split("#", 1)[0].strip() for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


def resolve(packages: list[str]) -> list[DebRef]:
    """Which files ``apt-get download`` would fetch for these packages."""
    try:
        proc = subprocess.run(["apt-get", "download", "--print-uris", *packages],
                              capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise GuestBuildError("apt-get not found: the guest initrd is built from Debian "
                              "packages") from exc
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()
        raise GuestBuildError(
            "cannot resolve guest packages with apt-get: "
            f"{detail[-1] if detail else 'unknown error'} (run `apt-get update`?)"
        )
    refs = []
    for line in proc.stdout.splitlines():
        if m := _URI_LINE.match(line):
            name = m.group("file").split("_", 1)[0]
            refs.append(DebRef(name, m.group("file"), int(m.group("size")), m.group("sha")))
    found = {r.package for r in refs}
    if missing := [p for p in packages if p not in found]:
        raise GuestBuildError(f"apt-get cannot find guest packages: {', '.join(missing)}")
    return sorted(refs, key=lambda r: r.package)


def fetch(refs: list[DebRef], cache: Path, reporter: Reporter) -> list[Path]:
    """Make sure every package file is in ``cache`` and intact; return their paths."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    wanted = [r for r in refs if not _intact(cache / r.filename, r)]
    if wanted:
        with reporter.task("downloading guest packages", len(wanted)) as task:
            for ref in wanted:
                proc = subprocess.run(["apt-get", "download", f"{ref.package}"], cwd=cache,
                                      capture_output=True, text=True, check=False)
                if proc.returncode != 0 or not _intact(cache / ref.filename, ref):
                    last = (proc.stderr.strip().splitlines() or ["checksum mismatch"])[-1]
                    raise GuestBuildError(f"downloading {ref.package} failed: {last}")
                task.advance(1, ref.package)
    for ref in refs:
        paths.append(cache / ref.filename)
    return paths


def _intact(path: Path, ref: DebRef) -> bool:
    return path.is_file() and path.stat().st_size == ref.size and file_sha256(path) == ref.sha256


def extract(debs: list[Path], dest: Path) -> None:
    """Unpack the packages' files (not their scripts) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise GuestBuildError(f"unpacking {deb.name} failed: {proc.stderr.strip()}")
