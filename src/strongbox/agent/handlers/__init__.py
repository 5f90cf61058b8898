"""handlers maps request methods to the functions that serve them.

Each module registers its methods with :func:`handler`; ``all_handlers``
imports them all, so adding a module here is all a new request needs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from strongbox.agent.server import Handler

_REGISTRY: dict[str, Handler] = {}


def handler(method: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _REGISTRY[method] = fn
        return fn

    return register


def all_handlers() -> dict[str, Handler]:
    from strongbox.agent.handlers import (  # noqa: F401  (register on import)
        containers,
        processes,
        system,
    )

    return dict(_REGISTRY)

