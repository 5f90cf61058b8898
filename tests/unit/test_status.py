"""The one status model: whole lifecycles walked verb by verb, legal and illegal.

Every layer (CLI record and monitor, shim, sandbox, agent) checks through
``strongbox.status.require``, so these sequences are the rules a user of any
front door meets.
"""

from __future__ import annotations

import json

import pytest

from strongbox import status as sm
from strongbox.errors import ContainerStateError

ALL = tuple(sm.ContainerStatus.members())


def walk(start: sm.ContainerStatus, *verbs: str) -> sm.ContainerStatus:
    status = start
    for verb in verbs:
        status = sm.require(status, verb, "c1")
    return status


def test_statuses_are_a_closed_set_of_strings() -> None:
    assert [s.value for s in ALL] == ["creating", "created", "running", "paused", "stopped"]
    assert sm.ContainerStatus("running") is sm.RUNNING
    assert sm.RUNNING == "running" and json.dumps({"s": sm.PAUSED}) == '{"s": "paused"}'
    assert repr(sm.STOPPED) == "ContainerStatus.STOPPED"
    with pytest.raises(ValueError, match="'exited' is not a container status"):
        sm.ContainerStatus("exited")


@pytest.mark.parametrize(("verbs", "end"), [
    ((sm.CREATE, sm.START, sm.EXIT, sm.DELETE), sm.STOPPED),
    ((sm.CREATE, sm.START, sm.PAUSE, sm.RESUME, sm.PAUSE, sm.EXIT), sm.STOPPED),
    ((sm.CREATE, sm.KILL, sm.EXIT, sm.DELETE), sm.STOPPED),  # runc kills a created container
    ((sm.CREATE, sm.DELETE), sm.STOPPED),  # a created container is deleted without --force
    ((sm.CREATE, sm.START, sm.EXEC, sm.UPDATE, sm.PS, sm.STATS, sm.RESIZE), sm.RUNNING),
    ((sm.CREATE, sm.START, sm.PAUSE, sm.KILL, sm.UPDATE, sm.PS, sm.STATS), sm.PAUSED),
    ((sm.CREATE, sm.START, sm.PAUSE, sm.DESTROY), sm.STOPPED),
    ((sm.EXIT,), sm.STOPPED),  # the VM died while creating
])
def test_legal_lifecycles(verbs: tuple[str, ...], end: sm.ContainerStatus) -> None:
    assert walk(sm.CREATING, *verbs) == end


@pytest.mark.parametrize(("verbs", "refused", "current", "required"), [
    ((sm.CREATE,), sm.EXEC, "created", ("running",)),
    ((sm.CREATE, sm.START), sm.START, "running", ("created",)),
    ((sm.CREATE, sm.START), sm.RESUME, "running", ("paused",)),
    ((sm.CREATE, sm.START), sm.DELETE, "running", ("creating", "created", "stopped")),
    ((sm.CREATE, sm.START, sm.PAUSE), sm.PAUSE, "paused", ("running",)),
    ((sm.CREATE, sm.START, sm.PAUSE), sm.EXEC, "paused", ("running",)),
    ((sm.CREATE, sm.START, sm.EXIT), sm.KILL, "stopped", ("created", "running", "paused")),
    ((sm.CREATE, sm.START, sm.EXIT), sm.STATS, "stopped", ("created", "running", "paused")),
    ((sm.CREATE, sm.START, sm.EXIT), sm.START, "stopped", ("created",)),
    ((), sm.START, "creating", ("created",)),
    ((sm.CREATE,), sm.CREATE, "created", ("creating",)),
])
def test_illegal_verbs_name_current_and_required(verbs: tuple[str, ...], refused: str,
                                                 current: str,
                                                 required: tuple[str, ...]) -> None:
    status = walk(sm.CREATING, *verbs)
    with pytest.raises(ContainerStateError) as info:
        sm.require(status, refused, "c1")
    assert (info.value.current, info.value.required) == (current, required)
    assert info.value.container_id == "c1" and info.value.operation == refused
    need = " or ".join(required)
    assert str(info.value) == f"cannot {refused} container c1: it is {current}, not {need}"


@pytest.mark.parametrize("verb", sm.VERBS)
def test_every_verb_in_every_status_is_decided_by_the_table(verb: str) -> None:
    for status in ALL:
        allowed = status in sm.TRANSITIONS[verb]
        if allowed:
            assert sm.require(status, verb) in ALL
        else:
            with pytest.raises(ContainerStateError):
                sm.require(status, verb)
    assert sm.allowed(verb) == tuple(s for s in ALL if s in sm.TRANSITIONS[verb])


def test_destroy_and_exit_are_allowed_everywhere_and_end_stopped() -> None:
    for verb in (sm.DESTROY, sm.EXIT):
        assert {sm.require(s, verb) for s in ALL} == {sm.STOPPED}


def test_a_plain_string_status_is_accepted_where_it_is_read_from_json() -> None:
    assert sm.require("running", sm.PAUSE) is sm.PAUSED
