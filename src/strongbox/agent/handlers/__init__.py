"""handlers holds the functions that serve the agent's requests, one module per family.

Each module registers its functions against the verbs declared in
:mod:`strongbox.protocol.verbs` (:func:`strongbox.agent.registry.handler`);
``all_handlers`` imports them all, so adding a module here is all a new
family of requests needs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from strongbox.agent.registry import Handler
    from strongbox.protocol.verbs import Verb


def all_handlers() -> dict[str, tuple[Verb, Handler]]:
    """Every handler by verb name, with its declaration."""
    from strongbox.agent import registry
    from strongbox.agent.handlers import (  # noqa: F401  (register on import)
        containers,
        network,
        processes,
        system,
    )

    return registry.registered()
