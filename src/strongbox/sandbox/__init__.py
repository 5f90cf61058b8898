"""sandbox owns one microVM and its agent: boot, talk, share files, shut down.

The two front doors (the runc-style CLI and the containerd shim) both go
through this package; neither talks to QEMU or the agent directly.
"""
