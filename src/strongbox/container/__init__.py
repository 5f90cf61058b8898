"""container turns an OCI process spec into an isolated process, as runc's libcontainer does.

It runs inside the guest (and in host tests): standard library only, plus
the ctypes bindings in ``_syscalls`` and ``_libseccomp``. Nothing is
imported here, so importing one module costs only what it needs.

Where to start reading:

* ``launcher``: the API the agent calls (``launch``, ``exec_in``,
  ``Launched``, ``read_exec_result``) and how processes are forked;
* ``plan``: the spec parsed and checked in the caller, before any fork;
* ``init``: what the forked process does, from fork() to the barrier;
* ``process``: from the barrier to execve (user, capabilities, seccomp);
* ``namespaces`` (``userns``: id mappings), ``rootfs`` (``mounts``,
  ``mountopts``, ``paths``, ``devices``), ``capabilities``, ``seccomp``,
  ``rlimits``, ``hooks`` (startContainer): one mechanism each;
* ``sync``: the pipes between launcher and process;
* ``cgroups``: a cgroup v2 directory (create, limit, freeze, kill, stats);
* ``errors``: ``ContainerError``, the only error raised on purpose.
"""
