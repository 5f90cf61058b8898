"""Cpuset reads the kernel's CPU and memory-node list syntax ("0-3,5,7-8").

Used by the validator (linux.resources.cpu.cpus/mems) and by VM sizing (how
many vCPUs a cpuset asks for). Standard library only.
"""

from __future__ import annotations

from .errors import SpecError


def count_cpu_list(text: str, path: str) -> int:
    """Count the distinct numbers of a kernel CPU or memory-node list such as "0-3,5,7-8".

    This is the cpuset syntax of config-linux.md "CPU" (cpus, mems): comma-separated
    numbers and inclusive ranges; overlapping items count once. The kernel's stride
    form ("0-7:2/4") is not accepted; runc passes it through but no known client
    produces it. Ranges are merged rather than expanded, so "0-4000000000" is cheap.
    """
    ranges: list[tuple[int, int]] = []
    for item in text.split(","):
        first, dash, last = item.partition("-")
        if not _is_decimal(first) or (dash and not _is_decimal(last)):
            raise SpecError(path, "a cpuset list like '0-3,5'", repr(text))
        low = int(first)
        high = int(last) if dash else low
        if high < low:
            raise SpecError(path, "a cpuset list with ascending ranges like '0-3,5'", repr(text))
        ranges.append((low, high))
    ranges.sort()
    count = 0
    covered = -1  # highest number already counted
    for low, high in ranges:
        if high > covered:
            count += high - max(low, covered + 1) + 1
            covered = high
    return count


def _is_decimal(text: str) -> bool:
    # str.isdecimal() also accepts non-ASCII digits, which the kernel does not.
    return bool(text) and all("0" <= char <= "9" for char in text)
