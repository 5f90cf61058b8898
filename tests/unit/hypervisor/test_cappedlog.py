"""A capped log keeps the head and the latest tail of what it was given, never more than its cap."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from strongbox.hypervisor.cappedlog import MIN_CAP, CappedLog, Recorder


def test_small_output_is_kept_verbatim(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "c.log", 64 * 1024)
    log.write(b"boot line 1\n")
    log.write(b"boot line 2\n")
    log.close()
    assert (tmp_path / "c.log").read_bytes() == b"boot line 1\nboot line 2\n"


def test_a_flood_keeps_the_head_a_marker_and_the_latest_tail(tmp_path: Path) -> None:
    cap = 64 * 1024
    log = CappedLog(tmp_path / "c.log", cap)
    log.write(b"BOOT\n" + b"h" * (cap // 4))
    for i in range(2000):
        log.write(f"line {i:06d}\n".encode() * 20)
    log.write(b"THE LAST WORDS\n")
    log.close()
    data = (tmp_path / "c.log").read_bytes()
    assert len(data) <= cap
    assert data.startswith(b"BOOT\n")
    assert b"bytes of output dropped here" in data
    assert data.endswith(b"line 001999\nTHE LAST WORDS\n")
    assert b"line 000000" not in data  # the middle went


def test_the_file_stays_under_the_cap_while_flooding(tmp_path: Path) -> None:
    cap = 32 * 1024
    log = CappedLog(tmp_path / "c.log", cap)
    for _ in range(500):
        log.write(os.urandom(4096))
        log.flush()
        assert (tmp_path / "c.log").stat().st_size <= cap
    log.close()


def test_the_cap_has_a_floor(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "c.log", 10)
    assert log.cap == MIN_CAP
    log.close()


def test_recorder_copies_until_eof_and_closes_its_descriptor(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    recorder = Recorder(ours.detach(), tmp_path / "c.log", 64 * 1024)
    theirs.sendall(b"hello\n" * 100)
    theirs.close()
    assert recorder.join(5)
    assert (tmp_path / "c.log").read_bytes() == b"hello\n" * 100


def test_recorder_caps_a_flood(tmp_path: Path) -> None:
    cap = 64 * 1024
    read_end, write_end = os.pipe()
    recorder = Recorder(read_end, tmp_path / "c.log", cap)
    chunk = b"x" * 65536
    started = time.monotonic()
    for _ in range(320):  # 20 MiB
        os.write(write_end, chunk)
    os.write(write_end, b"\nend\n")
    os.close(write_end)
    assert recorder.join(10)
    assert time.monotonic() - started < 10
    data = (tmp_path / "c.log").read_bytes()
    assert len(data) <= cap and data.endswith(b"\nend\n")


def test_recorder_stop_ends_a_recording_whose_writer_lives(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    recorder = Recorder(read_end, tmp_path / "c.log", 64 * 1024)
    os.write(write_end, b"partial\n")
    time.sleep(0.2)
    recorder.stop()
    assert recorder.join(0)
    assert (tmp_path / "c.log").read_bytes() == b"partial\n"
    os.close(write_end)


def test_a_full_disk_stops_the_recording_not_the_writer(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    recorder = Recorder(read_end, Path("/dev/full"), 64 * 1024)
    for _ in range(100):  # would block forever if the recorder stopped reading
        os.write(write_end, b"y" * 4096)
    os.close(write_end)
    assert recorder.join(5)
