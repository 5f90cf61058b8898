"""agent is the guest's PID 1: it prepares the guest and serves the host's requests.

Request path: ``init.main`` mounts the early file systems (``mounts``),
finds the virtio-serial port named for the agent (``port``) and runs the
``server`` loop, which decodes protocol frames and dispatches each request
to a handler registered in ``handlers``. Standard library only.
"""
