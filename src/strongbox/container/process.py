"""Process turns the container process, still root and still ours, into the workload.

This is what happens after the start barrier, for ``launch`` and ``exec_in``
alike; runc's ordering, because each step needs the privileges the next
one drops:

1. PR_SET_NO_NEW_PRIVS if asked;
2. without noNewPrivileges, load seccomp now (it needs CAP_SYS_ADMIN);
3. chdir(cwd) as root (retried after the user switch if root was refused,
   for a directory only the user may enter);
4. shrink the bounding set, clear the ambient set;
5. hand stdio to the user, setgroups/setgid/setuid with PR_SET_KEEPCAPS so
   the configured capabilities survive a non-zero uid;
6. capset + ambient capabilities;
7. look the program up in the *container's* $PATH;
8. the container's startContainer hooks, for its init (:mod:`hooks`);
9. with noNewPrivileges, load seccomp as the last step (the filter then
   only has to allow execve itself);
10. execve.

Errors are ContainerError; the caller reports them and exits. Exec errors
carry the errno that decides the exit status: 127 not found, 126 otherwise.
"""

from __future__ import annotations

import errno
import os
import stat

from strongbox.container import _syscalls as sc
from strongbox.container import capabilities, seccomp
from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from strongbox.container.plan import ProcessPlan

#: The search path execvp(3) uses when $PATH is unset.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def exit_code(err: ContainerError) -> int:
    """The shell's convention: 127 for a program not found, 126 for one that cannot run."""
    if err.stage != "exec":
        return 1
    return 127 if err.errno == errno.ENOENT else 126


def lookpath(file: str, path_env: str | None) -> str:
    """Find ``file`` like Go's exec.LookPath (as runc does): in $PATH unless it has a slash."""
    if "/" in file:
        _check_executable(file, file)
        return file
    for directory in (DEFAULT_PATH if path_env is None else path_env).split(":"):
        candidate = os.path.join(directory or ".", file)
        try:
            _check_executable(candidate, file)
        except ContainerError:
            continue
        return candidate
    raise ContainerError("exec", f'exec "{file}": executable file not found in $PATH',
                         errno.ENOENT)


def _check_executable(path: str, name: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _exec_error(name, exc.errno or errno.ENOENT) from exc
    if stat.S_ISDIR(mode) or not mode & 0o111:
        raise _exec_error(name, errno.EACCES)


def _exec_error(name: str, err: int) -> ContainerError:
    return ContainerError("exec", f'exec "{name}": {os.strerror(err).lower()}', err)


def home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    """The user's home from the container's /etc/passwd; "/" when it has none (as runc)."""
    try:
        with open(passwd) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def environment(plan: ProcessPlan) -> dict[str, str]:
    """The execve environment: the spec's, last value wins, HOME added if missing."""
    env: dict[str, str] = {}
    for entry in plan.env:
        key, sep, value = entry.partition("=")
        if sep and key:
            env[key] = value
    if "HOME" not in env:
        env["HOME"] = home_of(plan.uid)
    return env


def chown_stdio(uid: int, gid: int) -> None:
    """Let a non-root user reopen its own stdio (/dev/stdout, /proc/self/fd/1), as runc does.

    With a user namespace the caller hands them to the mapped ids first, from
    outside: inside, an fd owned by an unmapped id cannot be chowned.
    """
    if uid == 0 and gid == 0:
        return
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3):
                continue  # never hand /dev/null to the user
            os.fchown(fd, uid, gid)
        except OSError:
            pass  # a read-only file system or a closed fd: nothing to fix


def switch_user(plan: ProcessPlan) -> None:
    keep = plan.capabilities is not None and plan.uid != 0
    chown_stdio(plan.uid, plan.gid)
    try:
        os.setgroups(plan.additional_gids)
        if keep:
            sc.prctl(sc.PR_SET_KEEPCAPS, 1)
        os.setgid(plan.gid)
        os.setuid(plan.uid)
        if keep:
            sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    except OSError as exc:
        raise ContainerError.from_os("user", f"set user {plan.uid}:{plan.gid}", exc) from exc


def _chdir(cwd: str) -> bool:
    """chdir; False when refused for permissions (try again as the user)."""
    try:
        os.chdir(cwd)
    except PermissionError:
        return False
    except OSError as exc:
        raise ContainerError.from_os("cwd", f"chdir {cwd}", exc) from exc
    return True


def become(plan: ProcessPlan, last_cap: int,
           before_exec: Callable[[], None] | None = None) -> NoReturn:
    """Steps 1-10 above (``before_exec`` is step 8): never returns; raises ContainerError
    if a step fails."""
    if plan.no_new_privileges:
        try:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        except OSError as exc:
            raise ContainerError.from_os("nnp", "set no_new_privs", exc) from exc
    if plan.seccomp is not None and not plan.no_new_privileges:
        seccomp.load(plan.seccomp, no_new_privileges=False)
    in_cwd = _chdir(plan.cwd)
    caps = plan.capabilities
    if caps is not None:
        capabilities.drop_bounding(caps, last_cap)
    switch_user(plan)
    if not in_cwd:
        try:
            os.chdir(plan.cwd)
        except OSError as exc:
            raise ContainerError.from_os("cwd", f"chdir {plan.cwd}", exc) from exc
    if caps is not None:
        capabilities.apply_sets(caps)
    if before_exec is not None:
        before_exec()
    env = environment(plan)
    path = lookpath(plan.args[0], env.get("PATH"))
    if plan.seccomp is not None and plan.no_new_privileges:
        seccomp.load(plan.seccomp, no_new_privileges=True)
    try:
        os.execve(path, plan.args, env)
    except OSError as exc:
        raise _exec_error(plan.args[0], exc.errno or errno.EACCES) from exc
