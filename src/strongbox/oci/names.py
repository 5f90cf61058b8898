"""Names are the closed vocabularies of the OCI runtime spec that config.json values come from.

Each table is a tuple in a meaningful order (kernel numbering for capabilities and
rlimits, alphabetical otherwise) so that error messages can list the choices
deterministically and guest code can turn a name into a number with ``.index()``.
Tuples, not sets or enums: membership over a few dozen short strings is cheap, and
``enum`` is too slow to import in the guest.
"""

from __future__ import annotations

# Linux capabilities in kernel numbering (include/uapi/linux/capability.h): the index of
# a name is its capability number, which is what capset(2) and the bounding set use.
# Runtime-spec config.md "POSIX process" > capabilities names them with the CAP_ prefix.
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# The five capability sets of config.md process.capabilities.
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# Resource limits in the kernel's asm-generic numbering (include/uapi/asm-generic/
# resource.h, used by x86, arm, arm64, riscv, ppc and s390; alpha, mips and sparc
# differ, so guest code should prefer the `resource` module's constants).
RLIMITS = (
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
)

# config-linux.md "Namespaces".
NAMESPACE_TYPES = ("cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts")

# config-linux.md "Devices" (c and u are both character devices; p is a FIFO).
DEVICE_TYPES = ("b", "c", "p", "u")

# config-linux.md "Device allowlist": a is every device.
DEVICE_CGROUP_TYPES = ("a", "b", "c")
DEVICE_ACCESS = "rwm"

# config-linux.md "Rootfs Mount Propagation".
ROOTFS_PROPAGATIONS = (
    "private",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "shared",
    "slave",
    "unbindable",
)

# config.md "POSIX-platform Hooks", in the order of a container's life.
HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)

# Mount options that make a mount a bind mount (config.md "Mounts": the type may then
# be omitted).
BIND_OPTIONS = ("bind", "rbind")

# config-linux.md "Seccomp".
SECCOMP_ACTIONS = (
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
)

SECCOMP_ARCHES = (
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
)

SECCOMP_FLAGS = (
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)

SECCOMP_OPERATORS = (
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
)

# Syscall arguments a seccomp rule can compare (the kernel passes six).
SECCOMP_MAX_ARG_INDEX = 5
