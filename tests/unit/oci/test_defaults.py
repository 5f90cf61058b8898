"""default_spec(): what `strongbox spec` writes, like `runc spec`, and that it validates."""

from __future__ import annotations

import json
import os
from pathlib import Path

from strongbox.oci.defaults import default_spec
from strongbox.oci.spec import load_bundle, namespace, validate


def test_default_spec_validates() -> None:
    spec = validate(default_spec())
    assert spec["ociVersion"] == "1.0.2"
    assert spec["hostname"] == "strongbox"
    assert spec["process"]["args"] == ["sh"]
    assert spec["process"]["terminal"] is True
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert "TERM=xterm" in spec["process"]["env"]
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]


def test_default_capabilities_are_runcs_three() -> None:
    capabilities = default_spec()["process"]["capabilities"]
    assert set(capabilities) == {"bounding", "effective", "permitted", "ambient"}
    for names in capabilities.values():
        assert names == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def test_default_namespaces_and_mounts() -> None:
    spec = default_spec()
    kinds = [entry["type"] for entry in spec["linux"]["namespaces"]]
    assert kinds == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    destinations = [mount["destination"] for mount in spec["mounts"]]
    assert destinations == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"
    ]
    assert spec["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]


def test_rootless_spec() -> None:
    spec = validate(default_spec(rootless=True))
    kinds = [entry["type"] for entry in spec["linux"]["namespaces"]]
    assert kinds == ["pid", "ipc", "uts", "mount", "cgroup", "user"]
    assert namespace(spec, "network") is None
    assert spec["linux"]["uidMappings"] == [
        {"containerID": 0, "hostID": os.geteuid(), "size": 1}
    ]
    assert spec["linux"]["gidMappings"] == [
        {"containerID": 0, "hostID": os.getegid(), "size": 1}
    ]
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert sys_mount == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    devpts = next(m for m in spec["mounts"] if m["destination"] == "/dev/pts")
    assert "gid=5" not in devpts["options"]
    assert "resources" not in default_spec(rootless=True)["linux"]


def test_each_call_returns_a_fresh_document() -> None:
    first = default_spec()
    first["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    first["mounts"][0]["options"].append("ro")
    first["linux"]["maskedPaths"].clear()
    assert default_spec() == default_spec(rootless=False)
    assert "CAP_SYS_ADMIN" not in default_spec()["process"]["capabilities"]["bounding"]
    assert default_spec()["linux"]["maskedPaths"]


def test_written_default_spec_loads_as_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(default_spec(), indent=2))
    (tmp_path / "rootfs").mkdir()
    spec, rootfs = load_bundle(str(tmp_path))
    assert rootfs == str(tmp_path / "rootfs")
    assert spec["root"]["readonly"] is True
