"""The jail's tree: host paths mirrored at the same absolute paths, symlinks recreated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongbox.errors import HypervisorError
from strongbox.hypervisor.jailer.layout import Bind, plan, resolve


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A merged-/usr host in miniature: lib -> usr/lib, lib64/ld.so -> /…/lib/…/ld.so."""
    h = tmp_path / "host"
    (h / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (h / "usr/lib/x86_64-linux-gnu/ld.so").write_text("loader")
    (h / "usr/lib64").mkdir()
    (h / "lib").symlink_to("usr/lib")
    (h / "lib64").symlink_to("usr/lib64")
    (h / "usr/lib64/ld.so").symlink_to(f"{h}/lib/x86_64-linux-gnu/ld.so")
    (h / "usr/share/qemu").mkdir(parents=True)
    (h / "usr/share/qemu/qboot.rom").write_text("rom")
    (h / "usr/share/qemu/bios-microvm.bin").symlink_to("qboot.rom")
    (h / "run/vms/t/shared").mkdir(parents=True)
    (h / "run/vms/t/console.log").touch()
    return h


@pytest.fixture
def jail(host: Path) -> Path:
    path = host / "run/vms/t/jail"
    path.mkdir()
    return path


def test_resolve_follows_symlinks(host: Path) -> None:
    resolved, links = resolve(f"{host}/lib64/ld.so")
    assert resolved == f"{host}/usr/lib/x86_64-linux-gnu/ld.so"
    assert links == [(f"{host}/lib64", "usr/lib64"),
                     (f"{host}/usr/lib64/ld.so", f"{host}/lib/x86_64-linux-gnu/ld.so"),
                     (f"{host}/lib", "usr/lib")]
    assert resolve(f"{host}/usr/share/qemu/../qemu") == (f"{host}/usr/share/qemu", [])


def test_resolve_refuses_relative_and_loops(host: Path) -> None:
    with pytest.raises(HypervisorError, match="not an absolute path"):
        resolve("usr/lib")
    (host / "loop").symlink_to("loop")
    with pytest.raises(HypervisorError, match="Too many levels"):
        resolve(f"{host}/loop/x")


def test_symlinks_on_the_way_are_recreated(host: Path, jail: Path) -> None:
    plan(jail, [(f"{host}/lib64/ld.so", False)])
    # every link on the way exists in the jail, with the host's own target text
    assert os.readlink(f"{jail}{host}/lib64") == "usr/lib64"
    assert os.readlink(f"{jail}{host}/usr/lib64/ld.so") == f"{host}/lib/x86_64-linux-gnu/ld.so"
    assert os.readlink(f"{jail}{host}/lib") == "usr/lib"
    assert Path(f"{jail}{host}/usr/lib/x86_64-linux-gnu/ld.so").is_file()  # its mount point
    plan(jail, [(f"{host}/lib64/ld.so", False)])  # again: nothing to do, no error


def test_plan_makes_mount_points_and_dedupes(host: Path, jail: Path) -> None:
    binds = plan(jail, [
        (f"{host}/lib64/ld.so", False),                   # inside the library directory
        (f"{host}/lib/x86_64-linux-gnu", False),          # the same directory as the next
        (f"{host}/usr/lib/x86_64-linux-gnu", False),
        (f"{host}/usr/share/qemu", False),
        (f"{host}/usr/share/qemu/bios-microvm.bin", False),  # covered by its directory
        (f"{host}/run/vms/t/shared", True),
        (f"{host}/run/vms/t/console.log", True),
        ("/dev/null", False),
    ])
    assert binds == sorted(binds, key=lambda b: b.source.count("/"))
    assert set(binds) == {
        Bind(f"{host}/usr/lib/x86_64-linux-gnu", False, "dir"),
        Bind(f"{host}/usr/share/qemu", False, "dir"),
        Bind(f"{host}/run/vms/t/shared", True, "dir"),
        Bind(f"{host}/run/vms/t/console.log", True, "file"),
        Bind("/dev/null", False, "device"),
    }
    for bind in binds:
        target = Path(bind.target(jail))
        assert target.is_dir() if bind.kind == "dir" else target.is_file()
        assert not any(target.iterdir()) if bind.kind == "dir" else target.stat().st_size == 0
    # the symlinks a path resolves through are there; the firmware's comes with its directory
    assert (jail / str(host)[1:] / "lib").is_symlink()
    assert (jail / str(host)[1:] / "lib64").is_symlink()


def test_writable_path_in_read_only_directory_gets_its_own_bind(host: Path, jail: Path) -> None:
    (host / "usr/share/qemu/state").touch()
    binds = plan(jail, [(f"{host}/usr/share/qemu", False),
                        (f"{host}/usr/share/qemu/state", True)])
    assert [(b.source, b.writable) for b in binds] == [
        (f"{host}/usr/share/qemu", False), (f"{host}/usr/share/qemu/state", True)]


def test_same_path_twice_is_writable_if_either_is(host: Path, jail: Path) -> None:
    binds = plan(jail, [(f"{host}/run/vms/t/console.log", False),
                        (f"{host}/run/vms/t/console.log", True)])
    assert binds == [Bind(f"{host}/run/vms/t/console.log", True, "file")]


def test_plan_refuses_the_jail_itself_and_missing_paths(host: Path, jail: Path) -> None:
    with pytest.raises(HypervisorError, match="contains or is in the jail"):
        plan(jail, [(f"{host}/run/vms/t", True)])
    with pytest.raises(HypervisorError, match="contains or is in the jail"):
        plan(jail, [(str(jail), True)])
    with pytest.raises(HypervisorError, match=r"cannot expose .*No such file"):
        plan(jail, [(f"{host}/nope", False)])


def test_symlink_escaping_the_jail_is_refused(host: Path, jail: Path) -> None:
    # Something in the jail's tree already links out: mount points never follow it.
    (jail / str(host)[1:]).mkdir(parents=True)
    (jail / str(host)[1:] / "usr").symlink_to("/")
    with pytest.raises(HypervisorError, match="leaves the jail"):
        plan(jail, [(f"{host}/usr/share/qemu", False)])
