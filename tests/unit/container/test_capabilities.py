"""Capability names, masks and the set arithmetic the kernel imposes."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.container.capabilities import (
    LAST_CAP,
    NAMES,
    NUMBERS,
    CapabilitySets,
    mask_of,
    names_of,
    read_last_cap,
)
from strongbox.container.errors import ContainerError


def test_table_matches_linux_numbers() -> None:
    assert len(NAMES) == 41 and LAST_CAP == 40
    assert NUMBERS["CAP_CHOWN"] == 0
    assert NUMBERS["CAP_KILL"] == 5
    assert NUMBERS["CAP_NET_BIND_SERVICE"] == 10
    assert NUMBERS["CAP_SYS_ADMIN"] == 21
    assert NUMBERS["CAP_AUDIT_WRITE"] == 29
    assert NUMBERS["CAP_AUDIT_READ"] == 37
    assert NUMBERS["CAP_PERFMON"] == 38
    assert NUMBERS["CAP_BPF"] == 39
    assert NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40


def test_mask_and_names_round_trip() -> None:
    mask = mask_of(["CAP_AUDIT_WRITE", "CAP_KILL", "cap_net_bind_service"])
    assert mask == 0x20000420
    assert names_of(mask) == ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]


def test_unknown_names_are_all_named() -> None:
    with pytest.raises(ContainerError) as info:
        mask_of(["CAP_KILL", "CAP_FLY", "NET_ADMIN"], "bounding")
    assert str(info.value) == "unknown capabilities in bounding: CAP_FLY, NET_ADMIN"
    assert info.value.stage == "capabilities"


def test_absent_object_means_keep_everything() -> None:
    assert CapabilitySets.from_spec(None) is None


def test_missing_sets_are_empty_and_masks_are_clipped_to_the_kernel() -> None:
    sets = CapabilitySets.from_spec({"bounding": ["CAP_KILL", "CAP_CHECKPOINT_RESTORE"]},
                                    last_cap=39)
    assert sets is not None
    assert sets.bounding == 1 << 5
    assert (sets.effective, sets.permitted, sets.inheritable, sets.ambient) == (0, 0, 0, 0)


def test_bounding_drops_everything_not_listed_up_to_last_cap() -> None:
    sets = CapabilitySets(bounding=mask_of(["CAP_CHOWN", "CAP_KILL"]))
    dropped = sets.dropped_bounding(last_cap=7)
    assert dropped == [1, 2, 3, 4, 6, 7]


def test_ambient_needs_permitted_and_inheritable() -> None:
    sets = CapabilitySets(permitted=mask_of(["CAP_KILL", "CAP_CHOWN"]),
                          inheritable=mask_of(["CAP_KILL", "CAP_SETUID"]),
                          ambient=mask_of(["CAP_KILL", "CAP_CHOWN", "CAP_SETUID"]))
    assert names_of(sets.raisable_ambient()) == ["CAP_KILL"]


def test_read_last_cap(tmp_path: Path) -> None:
    path = tmp_path / "cap_last_cap"
    path.write_text("38\n")
    assert read_last_cap(str(path)) == 38
    assert read_last_cap(str(tmp_path / "missing")) == LAST_CAP
