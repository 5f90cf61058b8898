"""The asset store: atomic installs, lookups by inputs, the runtime's view."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.errors import AssetError
from strongbox.guest.assets import AssetStore, resolve_boot_assets


def _store(tmp_path: Path) -> AssetStore:
    store = AssetStore(tmp_path)
    store.ensure()
    return store


def test_install_and_lookup(tmp_path: Path) -> None:
    store = _store(tmp_path)
    built = tmp_path / "vmlinux.tmp"
    built.write_bytes(b"kernel")
    asset = store.install("kernel", "ab" * 32, built, 1.5)
    assert asset.path.read_bytes() == b"kernel" and not built.exists()
    assert store.lookup("kernel", "ab" * 32) == asset
    assert store.lookup("kernel", "cd" * 32) is None
    asset.path.write_bytes(b"truncated!")  # size no longer matches the record
    assert store.lookup("kernel", "ab" * 32) is None


def test_current_and_pruning(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assets = {}
    for kind, key in (("kernel", "11" * 32), ("initrd", "22" * 32)):
        f = tmp_path / f"{kind}.tmp"
        f.write_bytes(kind.encode())
        assets[kind] = store.install(kind, key, f, 0.1)
    store.set_current(assets)
    assert store.current() == assets
    f = tmp_path / "new.tmp"
    f.write_bytes(b"new kernel")
    newer = store.install("kernel", "33" * 32, f, 0.1)
    store.set_current({**assets, "kernel": newer})
    assert not assets["kernel"].path.exists()  # the superseded build is gone
    assert assets["initrd"].path.exists()
    assert resolve_boot_assets(tmp_path) == (newer.path, assets["initrd"].path)


def test_resolve_errors(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="strongbox guest build"):
        resolve_boot_assets(tmp_path)
    with pytest.raises(AssetError, match="no such file"):
        resolve_boot_assets(tmp_path, kernel="/nonexistent", initrd="/nonexistent")
