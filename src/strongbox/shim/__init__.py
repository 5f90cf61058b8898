"""The shim is strongbox's front door for containerd: a runtime v2 shim serving the task API.

containerd 1.6 starts ``containerd-shim-strongbox-v2 start``, which forks a long-lived
server on a unix socket; containerd then calls the ``containerd.task.v2.Task`` service
over ttrpc (``shim/ttrpc/``) with the protobuf messages of ``shim/proto/``, and the shim
turns each call into sandbox operations, one microVM per pod or container, and publishes
task events back to containerd's own ttrpc socket.
"""
