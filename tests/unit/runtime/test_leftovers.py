"""The cheap leftovers check reads the run directories' layout: it must be rundir's."""

from __future__ import annotations

from pathlib import Path

from strongbox.runtime import leftovers
from strongbox.sandbox import rundir


def test_layout_names_are_rundirs() -> None:
    assert leftovers.LOCK == rundir.LOCK
    assert rundir._vms(Path("/r")) == Path("/r") / leftovers.VMS
