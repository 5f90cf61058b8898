"""Tests for the generated envelope code: names, field numbers, and that it is current.

The regeneration check covers every tree scripts/gen-proto.sh handles (the ttrpc
envelope and the containerd messages, and the tests' CRI client stubs in
tests/framework/cri_api/): it regenerates into a temporary directory and wants
the checked-in files byte for byte.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from strongbox.shim.ttrpc.proto import ttrpc_pb2
from strongbox.shim.ttrpc.proto.google.rpc import status_pb2

ROOT = Path(__file__).resolve().parents[4]
SRC = ROOT / "src"

# shared/reference/containerd-shim-v2.md section 2
FIELDS = {
    ttrpc_pb2.Request: ("ttrpc.Request", {"service": 1, "method": 2, "payload": 3,
                                          "timeout_nano": 4, "metadata": 5}),
    ttrpc_pb2.Response: ("ttrpc.Response", {"status": 1, "payload": 2}),
    ttrpc_pb2.KeyValue: ("ttrpc.KeyValue", {"key": 1, "value": 2}),
    status_pb2.Status: ("google.rpc.Status", {"code": 1, "message": 2, "details": 3}),
}


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda c: c.__name__)
def test_names_and_field_numbers(cls: type) -> None:
    full_name, numbers = FIELDS[cls]
    descriptor = cls.DESCRIPTOR  # type: ignore[attr-defined]
    assert descriptor.full_name == full_name
    assert {f.name: f.number for f in descriptor.fields} == numbers


def test_response_embeds_google_rpc_status() -> None:
    status = ttrpc_pb2.Response.DESCRIPTOR.fields_by_name["status"]
    assert status.message_type is status_pb2.Status.DESCRIPTOR


def _generated(tree: Path) -> dict[str, bytes]:
    base = tree / "strongbox" / "shim"
    return {str(p.relative_to(tree)): p.read_bytes()
            for p in sorted(base.rglob("*_pb2.py*")) if "proto" in p.parts}


def _generated_cri(tree: Path) -> dict[str, bytes]:
    """The CRI client's generated modules under ``tree`` (the repo root, or gen-proto's OUT_DIR)."""
    base = tree / "tests" / "framework" / "cri_api"
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(base.glob("*_pb2*.py*"))}


def _protoc_version() -> str:
    """libprotoc's version, e.g. "35.1" (protobuf Python 7.35.1 generates with protoc 35.1)."""
    out = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "--version"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[-1]


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None,
                    reason="grpcio-tools is not installed")
def test_checked_in_code_is_what_gen_proto_generates(tmp_path: Path) -> None:
    checked_in = _generated(SRC)
    header = checked_in["strongbox/shim/ttrpc/proto/ttrpc_pb2.py"].decode()
    made_by = re.search(r"^# Protobuf Python Version: \d+\.(\S+)$", header, re.M)
    assert made_by is not None
    installed = _protoc_version()
    if made_by.group(1) != installed:
        # Another protoc formats differently; that is not a stale .proto.
        pytest.skip(f"checked-in code is from protoc {made_by.group(1)}, "
                    f"grpc_tools has protoc {installed}")
    subprocess.run(["bash", str(ROOT / "scripts" / "gen-proto.sh"), str(tmp_path)],
                   env={**os.environ, "PYTHON": sys.executable}, check=True,
                   capture_output=True)
    regenerated = _generated(tmp_path)
    assert sorted(regenerated) == sorted(checked_in), "the set of generated files differs"
    stale = [name for name in checked_in if checked_in[name] != regenerated[name]]
    assert not stale, f"out of date, run scripts/gen-proto.sh: {stale}"
    cri_checked_in, cri_regenerated = _generated_cri(ROOT), _generated_cri(tmp_path)
    assert sorted(cri_regenerated) == sorted(cri_checked_in), "the set of CRI modules differs"
    stale = [name for name in cri_checked_in if cri_checked_in[name] != cri_regenerated[name]]
    assert not stale, f"out of date, run scripts/gen-proto.sh: {stale}"
