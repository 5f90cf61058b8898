"""The one check of what crosses to the guest: shape and frame size, before a VM boots.

A container's ``create_container`` request and an exec's ``exec_process``
request must fit one frame (``MAX_PAYLOAD``); the check measures exactly what
``Request.encode`` writes, with the largest stream ids, exec id and console
size, so a request that passes it cannot fail to encode later.
"""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.errors import ConfigError
from strongbox.oci.spec import validate
from strongbox.protocol import verbs
from strongbox.protocol.frame import HEADER, MAX_PAYLOAD
from strongbox.protocol.messages import Request
from strongbox.sandbox.plan import (
    LARGEST_STDIO,
    LONGEST_EXEC_ID,
    ContainerRequest,
    check_exec,
    check_guest_request,
    create_params,
    exec_params,
    plan_container,
)

ROOTFS = "/tmp"


def spec_with_args(args: list[str]) -> dict[str, Any]:
    return validate({"ociVersion": "1.0.2", "root": {"path": ROOTFS},
                     "process": {"args": args, "cwd": "/"}})


def test_the_check_measures_what_request_encode_writes() -> None:
    request = ContainerRequest(id="c1", spec=spec_with_args(["sh", "é" * 10]), rootfs=ROOTFS)
    plan = plan_container(request)
    params = create_params(request, plan, LARGEST_STDIO)
    size = check_guest_request(verbs.CREATE_CONTAINER, params, "config.json")
    encoded = Request(0xFFFF_FFFF, verbs.CREATE_CONTAINER.name, params).encode()
    assert size == len(encoded) - HEADER.size


def test_a_container_too_large_for_one_frame_is_refused_while_planning() -> None:
    # 1.1 MB of arguments: legal JSON, far under config.json's 16 MiB, over one frame.
    request = ContainerRequest(id="c1", spec=spec_with_args(["x" * 1000] * 1100), rootfs=ROOTFS)
    with pytest.raises(ConfigError) as info:
        plan_container(request)
    message = str(info.value)
    assert message.startswith("config.json: too large for the guest: the create_container "
                              "request is ")
    assert f"over the 1 MiB ({MAX_PAYLOAD} bytes) limit" in message


def test_a_container_just_under_the_limit_is_planned() -> None:
    base = len(Request(1, verbs.CREATE_CONTAINER.name, create_params(
        ContainerRequest(id="c1", spec=spec_with_args(["sh", ""]), rootfs=ROOTFS),
        plan_container(ContainerRequest(id="c1", spec=spec_with_args(["sh", ""]),
                                        rootfs=ROOTFS)),
        LARGEST_STDIO)).encode()) - HEADER.size
    fits = spec_with_args(["sh", "x" * (MAX_PAYLOAD - base)])
    plan_container(ContainerRequest(id="c1", spec=fits, rootfs=ROOTFS))
    over = spec_with_args(["sh", "x" * (MAX_PAYLOAD - base + 1)])
    with pytest.raises(ConfigError, match="too large for the guest"):
        plan_container(ContainerRequest(id="c1", spec=over, rootfs=ROOTFS))


def test_an_exec_is_validated_and_sized_with_the_largest_ids_and_console() -> None:
    process = {"args": ["echo", "x" * 100], "terminal": True}
    checked = check_exec("c1", process)
    assert checked["cwd"] == "/"  # the normalized copy
    assert "consoleSize" not in checked
    sized = dict(checked, consoleSize={"height": 65535, "width": 65535})
    params = exec_params("c1", LONGEST_EXEC_ID, sized, LARGEST_STDIO)
    verbs.EXEC_PROCESS.check(params)
    with pytest.raises(ConfigError, match=r"^--process p.json: too large for the guest: the "
                                          r"exec_process request is \d+ bytes, over the 1 MiB"):
        check_exec("c1", {"args": ["x" * 1000] * 1100}, "--process p.json")


def test_what_cannot_be_encoded_is_one_short_line() -> None:
    with pytest.raises(ConfigError) as info:
        check_guest_request(verbs.EXEC_PROCESS, exec_params("c1", "e", {"x": "\ud800" * 5000},
                                                            LARGEST_STDIO), "exec")
    message = str(info.value)
    assert message.startswith("exec: cannot be sent to the guest: UnicodeEncodeError: ")
    assert len(message) < 200 and message.isascii()
    with pytest.raises(ConfigError, match=r"^exec: cannot be sent to the guest: params.stdio"):
        check_guest_request(verbs.EXEC_PROCESS, {"id": "c", "exec_id": "e", "process": {},
                                                 "stdio": []}, "exec")
