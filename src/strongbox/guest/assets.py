"""AssetStore keeps built guest kernels and initrds, keyed by the hash of their inputs.

Layout under the state directory (``<state>/guest``)::

    current.json              which kernel and initrd the runtime boots
    kernel-<inputs>/vmlinux   + asset.json (hashes, size, build time)
    initrd-<inputs>/initrd.cpio + asset.json

An asset directory appears only complete: it is assembled under a temporary
name and renamed into place, so a build killed half-way never leaves
something the runtime would boot. ``current.json`` is replaced atomically
too. The runtime reads only ``current.json`` (cheap, on every VM start);
computing input hashes is the builder's job.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from strongbox.atomicfile import atomic_write
from strongbox.errors import AssetError, StateDirError

KINDS = {"kernel": "vmlinux", "initrd": "initrd.cpio"}


@dataclass(frozen=True)
class Asset:
    """One built guest asset and what it was built from."""

    kind: str
    path: Path
    inputs_hash: str
    sha256: str
    size: int
    built_at: float
    build_seconds: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Asset:
        return cls(**{**data, "path": Path(data["path"])})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class AssetStore:
    """Built guest assets under ``<state_dir>/guest``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "guest"

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise StateDirError(
                f"state directory {self.state_dir}: cannot write ({exc.strerror})"
            ) from exc

    def lookup(self, kind: str, inputs_hash: str) -> Asset | None:
        """The asset built from exactly these inputs, if it exists and is intact."""
        meta = self.root / f"{kind}-{inputs_hash[:16]}" / "asset.json"
        try:
            asset = Asset.from_json(json.loads(meta.read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if asset.inputs_hash != inputs_hash or not asset.path.is_file():
            return None
        if asset.path.stat().st_size != asset.size:
            return None
        return asset

    def install(self, kind: str, inputs_hash: str, built: Path, build_seconds: float) -> Asset:
        """Move a freshly built file into the store and return its record."""
        final = self.root / f"{kind}-{inputs_hash[:16]}"
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{kind}-"))
        try:
            target = staging / KINDS[kind]
            shutil.move(str(built), target)
            asset = Asset(
                kind=kind,
                path=final / KINDS[kind],
                inputs_hash=inputs_hash,
                sha256=file_sha256(target),
                size=target.stat().st_size,
                built_at=time.time(),
                build_seconds=round(build_seconds, 3),
            )
            (staging / "asset.json").write_text(json.dumps(asset.to_json(), indent=2) + "\n")
            staging.chmod(0o755)
            if final.exists():
                shutil.rmtree(final)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return asset

    def set_current(self, assets: dict[str, Asset]) -> None:
        """Point the runtime at these assets and drop older builds of each kind."""
        data = {kind: asset.to_json() for kind, asset in assets.items()}
        atomic_write(self.root / "current.json", (json.dumps(data, indent=2) + "\n").encode())
        keep = {asset.path.parent.name for asset in assets.values()}
        for entry in self.root.iterdir():
            kind = entry.name.split("-", 1)[0]
            if kind in KINDS and entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    def current(self) -> dict[str, Asset]:
        """The assets the runtime boots; empty when nothing was built."""
        try:
            data = json.loads((self.root / "current.json").read_text())
            return {kind: Asset.from_json(value) for kind, value in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise AssetError(f"{self.root / 'current.json'}: unreadable ({exc})") from exc


def resolve_boot_assets(state_dir: Path, kernel: str = "", initrd: str = "") -> tuple[Path, Path]:
    """The kernel and initrd to boot: explicit paths win, else the built assets."""
    current: dict[str, Asset] | None = None
    chosen: list[Path] = []
    for kind, explicit in (("kernel", kernel), ("initrd", initrd)):
        if explicit:
            path = Path(explicit)
            source = f"hypervisor.qemu.{kind}"
        else:
            if current is None:
                current = AssetStore(state_dir).current()
            if kind not in current:
                raise AssetError(
                    f"no guest {kind} in {state_dir}: run `strongbox guest build` "
                    f"or set hypervisor.qemu.{kind}"
                )
            path = current[kind].path
            source = f"built {kind}"
        if not path.is_file():
            raise AssetError(f"{source} {path}: no such file")
        if not os.access(path, os.R_OK):
            raise AssetError(f"{source} {path}: not readable")
        chosen.append(path)
    return chosen[0], chosen[1]
