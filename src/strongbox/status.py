"""Status is the one model of a container's lifecycle: statuses, verbs, and the table between.

Every layer that keeps or checks a container's status uses this module and
nothing else: the CLI's state record and monitor (``runtime``), the shim's
tasks (``shim``), the host's sandbox (``sandbox``) and the guest agent
(``agent``). The statuses are runtime-spec's (runtime.md "State")::

    creating --create--> created --start--> running --pause--> paused
                            |                 |  ^               |
                            |                 |  +----resume-----+
                            +-----------------+---------+--------+
                                                        | exit (the init ended, or the VM)
                                                        v
                                                     stopped --delete--> (gone)

A verb that the table does not allow in the current status raises
:class:`~strongbox.errors.ContainerStateError` naming the current status and
the ones the verb needs; ``require`` also answers with the status the verb
leads to. ``kill`` is allowed in ``created`` as in runc (the
container dies before it ran); a forced delete (``destroy``) in any status.

The processes a container runs besides its init (exec) follow the same table
with the verbs that apply to a process: ``start``, ``kill``, ``exit``,
``delete``.

Standard library only, and no ``enum``: the guest agent imports this at boot,
where under emulation every module costs milliseconds. ``ContainerStatus`` is
an enum in all but name: a closed set of ``str`` values, one object each.
"""

from __future__ import annotations

from strongbox.errors import ContainerStateError

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import ClassVar


class ContainerStatus(str):
    """One of runtime-spec's container statuses; ``ContainerStatus("running")`` is RUNNING.

    A ``str`` so that it goes into JSON (state.json, agent replies) as is.
    Constructing one from any other value raises ValueError.
    """

    __slots__ = ()
    CREATING: ClassVar[ContainerStatus]
    CREATED: ClassVar[ContainerStatus]
    RUNNING: ClassVar[ContainerStatus]
    PAUSED: ClassVar[ContainerStatus]
    STOPPED: ClassVar[ContainerStatus]

    def __new__(cls, value: str) -> ContainerStatus:
        known = _BY_VALUE.get(value)
        if known is None:
            raise ValueError(f"{value!r} is not a container status "
                             f"(expected one of {', '.join(_BY_VALUE)})")
        return known

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"ContainerStatus.{self.value.upper()}"

    @classmethod
    def members(cls) -> Iterator[ContainerStatus]:
        """Every status, in lifecycle order."""
        return iter(_BY_VALUE.values())


_BY_VALUE: dict[str, ContainerStatus] = {}
for _name in ("creating", "created", "running", "paused", "stopped"):
    _BY_VALUE[_name] = str.__new__(ContainerStatus, _name)
    setattr(ContainerStatus, _name.upper(), _BY_VALUE[_name])

CREATING = ContainerStatus.CREATING
CREATED = ContainerStatus.CREATED
RUNNING = ContainerStatus.RUNNING
PAUSED = ContainerStatus.PAUSED
STOPPED = ContainerStatus.STOPPED
#: The statuses in which the container (its init) has not ended.
LIVE = (CREATED, RUNNING, PAUSED)

# --- the verbs, as the error messages phrase them -----------------------------------------
CREATE = "create"
START = "start"
KILL = "kill"
PAUSE = "pause"
RESUME = "resume"
EXEC = "exec in"
UPDATE = "update"
PS = "list processes of"
STATS = "read statistics of"
RESIZE = "resize the terminal of"
EXIT = "stop"
DELETE = "delete"
DESTROY = "destroy"

#: verb -> {status it is allowed in: status it leads to}. The one transition table.
TRANSITIONS: dict[str, dict[str, ContainerStatus]] = {
    CREATE: {CREATING: CREATED},
    START: {CREATED: RUNNING},
    KILL: {CREATED: CREATED, RUNNING: RUNNING, PAUSED: PAUSED},
    PAUSE: {RUNNING: PAUSED},
    RESUME: {PAUSED: RUNNING},
    EXEC: {RUNNING: RUNNING},
    UPDATE: {CREATED: CREATED, RUNNING: RUNNING, PAUSED: PAUSED},
    PS: {CREATED: CREATED, RUNNING: RUNNING, PAUSED: PAUSED},
    STATS: {CREATED: CREATED, RUNNING: RUNNING, PAUSED: PAUSED},
    RESIZE: {CREATED: CREATED, RUNNING: RUNNING, PAUSED: PAUSED},
    EXIT: {CREATING: STOPPED, CREATED: STOPPED, RUNNING: STOPPED, PAUSED: STOPPED,
           STOPPED: STOPPED},
    DELETE: {CREATING: STOPPED, CREATED: STOPPED, STOPPED: STOPPED},
    DESTROY: {CREATING: STOPPED, CREATED: STOPPED, RUNNING: STOPPED, PAUSED: STOPPED,
              STOPPED: STOPPED},
}
VERBS = tuple(TRANSITIONS)


def allowed(verb: str) -> tuple[ContainerStatus, ...]:
    """The statuses ``verb`` is allowed in, in lifecycle order."""
    table = TRANSITIONS[verb]
    return tuple(s for s in _BY_VALUE.values() if s in table)


def require(current: str, verb: str, container_id: str = "") -> ContainerStatus:
    """Refuse ``verb`` unless ``current`` allows it; return the status it leads to.

    Raises :class:`ContainerStateError` (``current``, ``required``) otherwise.
    """
    after = TRANSITIONS[verb].get(current)
    if after is None:
        raise ContainerStateError(str(current), tuple(str(s) for s in allowed(verb)),
                                  container_id=container_id, operation=verb)
    return after

