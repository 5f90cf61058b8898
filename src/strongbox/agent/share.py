"""Share: where host files appear in the guest, and the per-container root filesystem.

The host exports one directory per sandbox over virtio-9p (tag
``sbshare``). Inside it, each container has ``<id>/rootfs`` and
``<id>/mounts/<n>/<name>`` for its bind mounts (named after the source, so a
bind's root in mountinfo ends in that name, as with runc; the agent gets
each path in the request's map); the host made them read-only where
the spec asks, so the guest cannot write them however it tries. The share
is mounted on first use, not at boot: a VM template must be saved with no
9p export mounted.
"""

from __future__ import annotations

import os

from strongbox.container._syscalls import MS_NODEV, MS_NOSUID, mount, umount

SHARE_TAG = "sbshare"
SHARE_DIR = "/run/strongbox/shared"
CONTAINERS_DIR = "/run/strongbox/containers"
#: 9p options: client-side permission checks with the host storing the
#: guest's uids as they are (QEMU's passthrough model); large messages;
#: no caching beyond what mmap needs, so host-side changes show at once.
NINEP_OPTIONS = "trans=virtio,version=9p2000.L,msize=262144,access=client,cache=mmap"


def ensure_share() -> str:
    """Mount the sandbox share if it is not mounted yet; return its path."""
    if not os.path.ismount(SHARE_DIR):
        os.makedirs(SHARE_DIR, exist_ok=True)
        mount(SHARE_TAG, SHARE_DIR, "9p", MS_NOSUID | MS_NODEV, NINEP_OPTIONS)
    return SHARE_DIR


def shared_path(relative: str) -> str:
    """A path inside the share, refusing anything that would leave it."""
    path = os.path.normpath(os.path.join(SHARE_DIR, relative))
    if not path.startswith(SHARE_DIR + "/"):
        raise ValueError(f"share path {relative!r} leaves the share")
    return path


def prepare_rootfs(container_id: str, source: str, overlay: bool) -> str:
    """The directory the container's root is built from.

    Without overlay that is the shared directory itself (writes go through
    to the host). With overlay, a tmpfs upper layer in guest memory sits on
    top of the read-only share, so the host's files are never written.
    """
    if not overlay:
        return source
    base = os.path.join(CONTAINERS_DIR, container_id)
    upper_fs = os.path.join(base, "overlay")
    merged = os.path.join(base, "rootfs")
    os.makedirs(upper_fs, exist_ok=True)
    os.makedirs(merged, exist_ok=True)
    mount("tmpfs", upper_fs, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.makedirs(os.path.join(upper_fs, "upper"))
    os.makedirs(os.path.join(upper_fs, "work"))
    mount("overlay", merged, "overlay", 0,
          f"lowerdir={source},upperdir={upper_fs}/upper,workdir={upper_fs}/work")
    return merged


def release_rootfs(container_id: str) -> None:
    """Undo :func:`prepare_rootfs` (best effort: the VM may be about to stop)."""
    base = os.path.join(CONTAINERS_DIR, container_id)
    for sub in ("rootfs", "overlay"):
        path = os.path.join(base, sub)
        if os.path.ismount(path):
            try:
                umount(path, 2)  # MNT_DETACH
            except OSError:
                pass
