"""User namespaces in the guest (issue 12): uid/gid mappings as runc applies them.

The mappings are podman ``--userns=auto``'s and Kubernetes ``hostUsers: false``'s
shape: container IDs 0-65535 at 100000. The rootfs is a host directory shared
into the guest, so what the guest kernel stores as owner (the host ID) is what
the host sees after the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("factory_mode")]

BASE = 100000
MAPPINGS = [{"containerID": 0, "hostID": BASE, "size": 65536}]
NAMESPACES = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")]
#: What the container reports: its maps, its ids, owners as it sees them, and a file it makes.
REPORT = ("cat /proc/self/uid_map /proc/self/gid_map; id; stat -c '%u:%g %n' /etc/passwd "
          "/dev/null; echo made > /tmp/made; stat -c '%u:%g %n' /tmp/made; "
          "echo to-stdout > /dev/stdout")


class Mapped:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.tmp = root, tmp

    def bundle(self, args: list[str], name: str = "b") -> Path:
        bundle = make_bundle(self.tmp / name, args, root__readonly=False,
                             linux__namespaces=NAMESPACES, linux__uidMappings=MAPPINGS,
                             linux__gidMappings=MAPPINGS,
                             process__user={"uid": 1000, "gid": 1000, "additionalGids": [100]})
        rootfs = bundle / "rootfs"
        for path in [rootfs, *rootfs.rglob("*")]:  # the image as the mapped root owns it
            os.lchown(path, BASE, BASE)
        return bundle

    def __call__(self, *args: str | Path) -> cli.Result:
        return cli.run("--root", self.root, *args)


@pytest.fixture
def mapped(no_leaks: Path, guest_assets: dict[str, Path]) -> Iterator[Mapped]:
    # Not under pytest's 0700 tmp_path: runc's mapped root must reach the rootfs.
    tmp = Path(tempfile.mkdtemp(prefix="sbx-userns-"))
    tmp.chmod(0o755)
    m = Mapped(no_leaks, tmp)
    try:
        yield m
    finally:
        for entry in (no_leaks / "containers").glob("*"):
            m("delete", "--force", entry.name)
        shutil.rmtree(tmp, ignore_errors=True)


def _runc(bundle: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle),
                           f"ref-{os.getpid()}"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def test_a_mapped_container_matches_runc_and_its_files_are_the_hosts_mapped_ids(
        mapped: Mapped) -> None:
    bundle = mapped.bundle(["sh", "-c", REPORT])
    reference = _runc(bundle, mapped.tmp / "runc")
    assert reference.returncode == 0, reference.stderr
    (bundle / "rootfs" / "tmp" / "made").unlink()

    result = mapped("run", "--bundle", bundle, "un").check()
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["0", str(BASE), "65536"]  # uid_map as set
    assert lines[1].split() == ["0", str(BASE), "65536"]  # gid_map
    assert lines[2] == "uid=1000(user) gid=1000(user) groups=100(users)"
    assert lines[3] == "0:0 /etc/passwd"  # owned by 100000 on the host: root inside
    assert lines[4] == "65534:65534 /dev/null"  # the guest's node, bound: its owner unmapped
    assert lines[5:] == ["1000:1000 /tmp/made", "to-stdout"]
    assert result.stdout == reference.stdout  # runc, same bundle, same view
    made = (bundle / "rootfs" / "tmp" / "made").stat()
    assert (made.st_uid, made.st_gid) == (BASE + 1000, BASE + 1000)


def test_exec_joins_the_user_namespace(mapped: Mapped) -> None:
    bundle = mapped.bundle(["sleep", "600"])
    argv = cli.strongbox_argv("--root", mapped.root, "run", "--detach", "--bundle", bundle, "ux")
    cli.run_to_files(argv, mapped.tmp / "out", mapped.tmp / "err").check()
    inside = mapped("exec", "ux", "sh", "-c", 'cat /proc/self/uid_map; id -u; '
                    '[ "$(readlink /proc/1/ns/user)" = "$(readlink /proc/self/ns/user)" ] '
                    "&& echo same")
    lines = inside.check().stdout.splitlines()
    assert lines[0].split() == ["0", str(BASE), "65536"]
    assert lines[1:] == ["1000", "same"]  # the spec's user, in the init's user namespace
    root = mapped("exec", "--user", "0:0", "ux", "touch", "/by-exec").check()
    assert root.returncode == 0
    assert (bundle / "rootfs" / "by-exec").stat().st_uid == BASE
    mapped("delete", "--force", "ux").check()
