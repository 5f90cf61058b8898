"""Block-device root file systems: a rootfs that is a mounted block device's file system
reaches the guest as a virtio-blk disk (virtio-mmio on microvm, virtio-pci on q35)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.blockimage import LoopImage
from tests.framework.bundle import make_bundle
from tests.framework.procs import wait_until

pytestmark = pytest.mark.vm

Q35 = 'machine_type = "q35"\npcie_root_port = 2\n'
#: microvm attaches the disk at boot (virtio-mmio); q35 hot-plugs it, into a clone too.
MACHINES = {"microvm": "", "q35": Q35, "q35-clone": Q35}


@pytest.fixture(scope="module")
def q35_template(tmp_path_factory: pytest.TempPathFactory, guest_assets: dict[str, Path]
                 ) -> str:
    base = tmp_path_factory.mktemp("q35tpl")
    factory = f'[factory]\nenable_template = true\ntemplate_path = "{base}/template"\n'
    config = base / "config.toml"
    config.write_text(f"[hypervisor.qemu]\n{Q35}{factory}")
    cli.run("--config", config, "--root", base / "root", "factory", "init").check()
    return factory


@pytest.fixture(params=list(MACHINES))
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    factory = request.getfixturevalue("q35_template") if request.param == "q35-clone" else ""
    path.write_text(f"[hypervisor.qemu]\ndisable_block_device_use = false\n"
                    f"{MACHINES[request.param]}{factory}")
    return path


@pytest.fixture
def image(tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[LoopImage]:
    with LoopImage(tmp_path, tmp_path / "bundle" / "rootfs") as img:
        yield img


def _bundle(image: LoopImage, script: str, readonly: bool = False) -> Path:
    bundle = image.mount.parent
    make_bundle(bundle, ["sh", "-c", script], rootfs=image.mount, root__readonly=readonly)
    return bundle


def _run(config: Path, root: Path, bundle: Path, cid: str) -> cli.Result:
    return cli.run("--config", config, "--root", root, "run", "--bundle", bundle, cid,
                   input="")


def test_rootfs_on_virtio_blk_and_writes_persist(config: Path, image: LoopImage,
                                                 no_leaks: Path) -> None:
    bundle = _bundle(image, "grep ' / ' /proc/mounts; echo from-the-guest > /written")
    result = _run(config, no_leaks, bundle, "blk1")
    assert result.returncode == 0, result.stderr
    source, target, fstype = result.stdout.split()[:3]
    assert (source, target, fstype) == ("/dev/vda", "/", "ext4"), result.stdout  # not 9p
    assert image.mounted(), "the host did not get its mount back"
    assert (image.mount / "written").read_text() == "from-the-guest\n"


def test_host_has_no_mount_while_the_guest_has_the_device(config: Path, image: LoopImage,
                                                          no_leaks: Path, tmp_path: Path
                                                          ) -> None:
    bundle = _bundle(image, "echo up > /up; sleep 600")
    created = cli.run_to_files(cli.strongbox_argv("--config", config, "--root", no_leaks,
                                                  "create", "--bundle", bundle, "blk2"),
                               tmp_path / "out", tmp_path / "err")
    assert created.returncode == 0, created.stderr
    try:
        assert not image.mounted()  # two kernels never cache one file system
        cli.run("--config", config, "--root", no_leaks, "start", "blk2").check()
    finally:
        cli.run("--config", config, "--root", no_leaks, "delete", "--force", "blk2").check()
    assert image.mounted()


def test_readonly_root_holds(config: Path, image: LoopImage, no_leaks: Path) -> None:
    bundle = _bundle(image, "grep ' / ' /proc/mounts; echo x > /nope", readonly=True)
    result = _run(config, no_leaks, bundle, "blk3")
    assert result.returncode != 0
    assert " ro," in result.stdout or " ro " in result.stdout, result.stdout
    assert "Read-only file system" in result.stderr
    assert not (image.mount / "nope").exists() and image.mounted()


def test_a_device_mounted_elsewhere_is_refused(config: Path, image: LoopImage,
                                               no_leaks: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["mount", "--bind", str(image.mount), str(other)], check=True)
    try:
        result = _run(config, no_leaks, _bundle(image, "true"), "blk4")
    finally:
        subprocess.run(["umount", str(other)], check=True)
    cli.assert_one_line_error(result, "root.path", image.device, "also mounted at",
                              str(other))
    assert image.mounted()  # nothing was taken


def test_kill_9_of_the_monitor_then_delete_gives_the_device_back(
        config: Path, image: LoopImage, no_leaks: Path, tmp_path: Path) -> None:
    bundle = _bundle(image, "sleep 600")
    sb = ("--config", config, "--root", no_leaks)
    cli.run_to_files(cli.strongbox_argv(*sb, "create", "--bundle", bundle, "blk5"),
                     tmp_path / "out", tmp_path / "err").check()
    monitor = int(json.loads(cli.run(*sb, "state", "blk5").check().stdout)["pid"])
    os.kill(monitor, signal.SIGKILL)
    assert wait_until(lambda: cli.run(*sb, "state", "blk5").returncode != 0
                      or "stopped" in cli.run(*sb, "state", "blk5").stdout, 20)
    assert not image.mounted()  # the dead monitor's record says whose it is
    cli.run(*sb, "delete", "--force", "blk5")
    assert wait_until(image.mounted, 10), "delete did not mount the device back"


def test_block_device_use_off_keeps_9p(image: LoopImage, no_leaks: Path) -> None:
    result = cli.run("--root", no_leaks, "run", "--bundle", _bundle(image, "grep ' / ' "
                     "/proc/mounts"), "blk6", input="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[2] == "9p" and image.mounted()


@pytest.mark.parametrize(("toml", "fragment"), [
    ('block_device_driver = "virtio-blk"\n', "machine_type 'microvm' takes 'virtio-mmio'"),
    ('machine_type = "q35"\nblock_device_driver = "virtio-mmio"\n',
     "machine_type 'q35' takes 'virtio-blk'"),
])
def test_a_block_driver_the_machine_lacks_is_one_clear_error(tmp_path: Path, no_leaks: Path,
                                                             toml: str, fragment: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[hypervisor.qemu]\ndisable_block_device_use = false\n{toml}")
    bundle = make_bundle(tmp_path / "b", ["true"])
    result = cli.run("--config", config, "--root", no_leaks, "run", "--bundle", bundle, "bad1")
    cli.assert_one_line_error(result, "hypervisor.qemu.block_device_driver", fragment)


def test_a_bind_mount_of_a_block_device_is_a_disk_too(config: Path, image: LoopImage,
                                                      no_leaks: Path, tmp_path: Path) -> None:
    """A volume whose source is a block device's file system: the guest mounts the device
    at the destination (read-only where the mount says so), the rootfs stays on 9p."""
    bundle = make_bundle(tmp_path / "vol", ["sh", "-c", "grep -E ' / | /data | /ro ' "
                                            "/proc/mounts; echo kept > /data/note"],
                         root__readonly=False)
    spec = json.loads((bundle / "config.json").read_text())
    for dest, options in (("/data", ["rbind", "rw"]), ("/ro", ["rbind", "ro"])):
        spec["mounts"].append({"destination": dest, "type": "bind", "source": str(image.mount),
                               "options": options})
    (bundle / "config.json").write_text(json.dumps(spec))
    result = _run(config, no_leaks, bundle, "vol1")
    assert result.returncode == 0, result.stderr
    mounts = {line.split()[1]: line.split() for line in result.stdout.splitlines()}
    assert mounts["/"][2] == "9p"
    assert mounts["/data"][0].startswith("/dev/vd") and mounts["/data"][2] == "ext4"
    assert mounts["/ro"][0] == mounts["/data"][0] and "ro" in mounts["/ro"][3].split(",")
    assert image.mounted() and (image.mount / "note").read_text() == "kept\n"
