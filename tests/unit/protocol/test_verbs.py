"""The agent's verbs are declared once: schemas check what they say, and the agent serves
exactly the declared verbs (a handler without a declaration, or a declaration without
a handler, fails here)."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.agent.handlers import all_handlers
from strongbox.protocol import InvalidParams, verbs
from strongbox.protocol.verbs import ListOf, MapOf, Shape, Verb, check


def test_agent_handler_table_equals_the_declared_verbs() -> None:
    handlers = all_handlers()
    assert set(handlers) == set(verbs.VERBS)
    for name, (verb, fn) in handlers.items():
        assert verb is verbs.VERBS[name], name  # registered against the declaration itself
        assert callable(fn)


def test_declared_names_are_unique_and_match_module_constants() -> None:
    constants = {v.name: v for k, v in vars(verbs).items() if isinstance(v, Verb) and k.isupper()}
    assert constants == verbs.VERBS


@pytest.mark.parametrize(("params", "message"), [
    ({}, "params.id: missing (expected str)"),
    ({"id": 3}, "params.id: expected str, got int"),
    ({"id": "c", "signal": True}, "params.signal: expected int, got bool"),
    ({"id": "c", "signal": 9, "all": "yes"}, "params.all: expected bool, got str"),
])
def test_signal_process_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParams) as info:
        verbs.SIGNAL_PROCESS.check(params)
    assert str(info.value) == message


def test_valid_params_pass_and_unknown_keys_are_ignored() -> None:
    verbs.SIGNAL_PROCESS.check({"id": "c", "signal": 15, "exec_id": "e", "hint": [1]})
    verbs.CREATE_CONTAINER.check({
        "id": "c", "spec": {}, "mounts": {"3": "c/mounts/3"},
        "rootfs": {"path": "c/rootfs", "overlay": True},
        "stdio": {"terminal": False, "stdin": None, "stdout": 2, "stderr": 3}})


@pytest.mark.parametrize(("params", "message"), [
    ({"stdio": {"stdout": 1}}, "params.stdio.terminal: missing (expected bool)"),
    ({"stdio": {"terminal": False, "stdin": "x"}},
     "params.stdio.stdin: expected int or None, got str"),
    ({"rootfs": {"overlay": True}}, "params.rootfs.path: missing (expected str)"),
    ({"mounts": {"1": 5}}, "params.mounts.1: expected str, got int"),
    ({"mounts": []}, "params.mounts: expected object of str, got list"),
])
def test_nested_shapes_name_the_field(params: dict[str, Any], message: str) -> None:
    good: dict[str, Any] = {"id": "c", "spec": {}, "mounts": {},
                            "rootfs": {"path": "c/rootfs"}, "stdio": {"terminal": False}}
    with pytest.raises(InvalidParams) as info:
        verbs.CREATE_CONTAINER.check({**good, **params})
    assert str(info.value) == message


def test_schema_building_blocks() -> None:
    check([1, 2], ListOf(int), "x")
    with pytest.raises(InvalidParams, match=r"x\[1\]: expected int, got str"):
        check([1, "2"], ListOf(int), "x")
    check({"a": {"b": 1.5}}, MapOf(Shape({"b": float})), "x")
    check(1, float, "x")  # JSON has one number type
    with pytest.raises(InvalidParams, match="x: expected object, got str"):
        check("no", Shape(), "x")


def test_every_verb_declares_its_errors_as_protocol_codes() -> None:
    from strongbox.protocol import messages

    codes = {v for k, v in vars(messages).items() if k.startswith("E_")}
    for verb in verbs.VERBS.values():
        assert set(verb.errors) <= codes, verb


SPEC: dict[str, Any] = {"memory": int, "name": str, "ratio": float}
OK = {"memory": 1, "name": "x", "ratio": 1.0}


def test_flat_shapes_accept_valid_params() -> None:
    check({"memory": 64, "name": "x", "ratio": 1, "extra": []}, Shape(SPEC), "params")
    check({**OK, "ratio": 0.5, "tty": None}, Shape(SPEC, {"tty": (bool, None)}), "params")


@pytest.mark.parametrize(("params", "optional", "message"), [
    ({**OK, "memory": "64"}, None, "params.memory: expected int, got str"),
    ({**OK, "memory": True}, None, "params.memory: expected int, got bool"),
    ({"name": "x", "ratio": 1.0}, None, "params.memory: missing (expected int)"),
    ({**OK, "ratio": False}, None, "params.ratio: expected float, got bool"),
    ({**OK, "tty": 1}, {"tty": (bool, None)}, "params.tty: expected bool or None, got int"),
    ([], None, "params: expected object, got list"),
])
def test_flat_shape_messages(params: Any, optional: Any, message: str) -> None:
    with pytest.raises(InvalidParams) as info:
        check(params, Shape(SPEC, optional), "params")
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)
