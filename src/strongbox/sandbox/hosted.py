"""Hosted is what the host knows of one container in a sandbox, between verbs."""

from __future__ import annotations

from dataclasses import dataclass, field

from strongbox import status as sm
from strongbox.sandbox.hooks import ContainerHooks


@dataclass
class Hosted:
    """One container: its status as the host last saw it, its init's guest pid, its hooks."""

    id: str
    status: sm.ContainerStatus = sm.CREATING
    #: Its init's pid in the guest (pod members join its namespaces).
    guest_pid: int = 0
    hooks: ContainerHooks = field(default_factory=lambda: ContainerHooks("", ""))
    #: Its spec's annotations (a CRI pod's namespace and name, for metrics labels).
    annotations: dict[str, str] = field(default_factory=dict)
