"""container turns an OCI process spec into an isolated Linux process.

It runs inside the guest (and in host tests): standard library only, plus
the ctypes bindings in ``_syscalls`` and ``_libseccomp``.
"""
