"""Network requests: bind the sandbox's host interfaces to the VM's NIC slots.

The netlink code (:mod:`strongbox.agent.nicslots` and what it imports) is
imported on the first request, not at boot: a VM without networking, and
every boot before the host knows its interfaces, never pays for it.
"""

from __future__ import annotations

from strongbox.agent.registry import handler
from strongbox.agent.server import RequestError
from strongbox.protocol import E_NETWORK, verbs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from strongbox.agent.server import Context


@handler(verbs.CONFIGURE_NETWORK)
def configure_network(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Apply the binding; a failed step is one ``network`` error naming the interface and step.

    Only ``nics`` is passed on: other keys are hints a newer host may send
    (see :mod:`strongbox.protocol.verbs`). The netlink requests are short and
    each is bounded by the socket's timeout, so answering at once is fine.
    """
    from strongbox.agent import nicslots
    from strongbox.agent.netconfig import NetconfigError

    try:
        return nicslots.apply({"nics": params["nics"]})
    except NetconfigError as exc:
        raise RequestError(E_NETWORK, str(exc)) from None
