"""Metrics: Prometheus figures for every running sandbox on the host (``strongbox metrics``).

Kata's ``kata-monitor`` in spirit: one exporter per node that finds every
sandbox by itself, whichever front door owns it, with nothing registered. A
sandbox is a run directory whose owner serves ``owner.sock``
(:mod:`strongbox.sandbox.ownersocket`) under a root or a client root
(:mod:`.discover`). Each scrape asks every owner for its report concurrently,
each within its own deadline, and reads QEMU's CPU time and memory from the
host's ``/proc`` (:mod:`.hostproc`); :mod:`.collector` turns both into metric
families. A sandbox whose owner does not answer in time (a wedged guest, a
stopped QEMU) is ``strongbox_sandbox_up 0`` with its host figures still shown;
it never delays the others beyond the deadline.
"""
