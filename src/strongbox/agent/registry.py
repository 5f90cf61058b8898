"""Registry is the agent's table of request handlers: one per declared verb.

Handler modules (:mod:`strongbox.agent.handlers`) register each function
against its declaration in :mod:`strongbox.protocol.verbs`; the server looks
a request up here, checks its parameters against the declaration, and only
then calls the handler.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~25 ms of guest boot; mypy still reads the block
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from strongbox.agent.server import Context
    from strongbox.protocol.verbs import Verb

    Handler = Callable[[Context, dict[str, Any]], Any]

_REGISTRY: dict[str, tuple[Verb, Handler]] = {}


def handler(verb: Verb) -> Callable[[Handler], Handler]:
    """Register the decorated function as the agent's answer to ``verb``."""
    def register(fn: Handler) -> Handler:
        _REGISTRY[verb.name] = (verb, fn)
        return fn

    return register


def registered() -> dict[str, tuple[Verb, Handler]]:
    """A copy of the table: verb name -> (declaration, handler)."""
    return dict(_REGISTRY)
