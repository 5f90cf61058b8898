"""The SDK's sandbox spec and its argument checks (no VM)."""

from __future__ import annotations

import pytest

from strongbox.errors import ConfigError
from strongbox.oci.spec import validate
from strongbox.sdk.sandbox import _egress
from strongbox.sdk.spec import ANNOTATION, check_env, exec_process, keepalive, sandbox_spec


def _spec(**overrides: object) -> dict[str, object]:
    options: dict[str, object] = dict(rootfs="/images/x/rootfs", hostname="sb-1",
                                      memory_mib=512, vcpus=2, env={"A": "1"}, timeout_s=None,
                                      netns=None, annotations={})
    options.update(overrides)
    return sandbox_spec({"Env": ["PATH=/bin", "LANG=C"], "WorkingDir": "/work"},
                        **options)  # type: ignore[arg-type]


def test_the_spec_is_valid_and_sized_from_the_arguments() -> None:
    spec = _spec()
    validate(spec)
    process = spec["process"]
    assert process["env"] == ["PATH=/bin", "LANG=C", "A=1"]  # type: ignore[index]
    assert process["cwd"] == "/work"  # type: ignore[index]
    assert spec["root"] == {"path": "/images/x/rootfs", "readonly": False}
    resources = spec["linux"]["resources"]  # type: ignore[index]
    assert resources["memory"] == {"limit": 512 << 20}
    assert resources["cpu"] == {"quota": 200_000, "period": 100_000}
    assert spec["annotations"] == {ANNOTATION: "1"}


def test_no_sizes_leave_the_vm_its_default_and_a_netns_is_joined() -> None:
    spec = _spec(memory_mib=None, vcpus=None, netns="/run/netns/n")
    resources = spec["linux"]["resources"]  # type: ignore[index]
    assert "memory" not in resources and "cpu" not in resources
    network = [n for n in spec["linux"]["namespaces"]  # type: ignore[index]
               if n["type"] == "network"]
    assert network == [{"type": "network", "path": "/run/netns/n"}]


def test_the_keepalive_waits_forever_or_for_the_timeout() -> None:
    assert "while :" in keepalive(None)[2]
    assert "sleep 2.5 & wait" in keepalive(2.5)[2]


def test_an_exec_inherits_the_sandbox_user_env_and_capabilities() -> None:
    spec = _spec()
    process = exec_process(spec, ["ls"], env={"A": "2"}, cwd=None)
    assert process["env"] == ["PATH=/bin", "LANG=C", "A=2"]
    assert process["cwd"] == "/work" and process["args"] == ["ls"]
    assert process["capabilities"] == spec["process"]["capabilities"]  # type: ignore[index]


@pytest.mark.parametrize("env", [{"1X": "a"}, {"X": 1}, {"X": "a\0b"}, ["X=1"]])
def test_a_bad_env_names_the_entry(env: object) -> None:
    with pytest.raises(ConfigError, match="env"):
        check_env(env)


def test_network_choices() -> None:
    assert _egress("none", None) == "none"
    assert _egress("all", "/run/netns/n") == "all"
    assert _egress(["10.0.0.1/24", "fd00::1/64"], "/n") == "10.0.0.0/24,fd00::/64"
    for bad, netns, named in [("all", None, "netns"), ("none", "/n", "netns"),
                              ("some", "/n", "network"), ([], "/n", "network"),
                              (["300.0.0.0/8"], "/n", "network")]:
        with pytest.raises(ConfigError, match=named):
            _egress(bad, netns)
