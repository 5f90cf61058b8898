"""The owner socket's protocol on a real unix socket (no VM: the reporter is ours), also
where the run directory's path is too long for a socket address."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from strongbox.sandbox.ownersocket import SOCKET, OwnerSocket, ask, reachable


async def _reporter() -> dict[str, Any]:
    return {"sandbox": "s1", "containers": []}


@pytest.mark.parametrize("depth", [1, 12])
def test_a_report_is_asked_and_answered(tmp_path: Path, depth: int) -> None:
    run_dir = tmp_path.joinpath(*(["a-rather-long-directory-name"] * depth))
    run_dir.mkdir(parents=True)
    assert (len(str(run_dir / SOCKET)) > 108) == (depth > 1)

    async def scenario() -> dict[str, Any]:
        owner = OwnerSocket(_reporter, run_dir)
        await owner.start()
        try:
            return await ask(run_dir / SOCKET, timeout=5)
        finally:
            owner.close()

    assert asyncio.run(scenario()) == {"sandbox": "s1", "containers": []}
    assert not (run_dir / SOCKET).exists()  # closed: the socket file goes


def test_an_unknown_op_is_an_error_answer(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        owner = OwnerSocket(_reporter, tmp_path)
        await owner.start()
        try:
            with reachable(tmp_path / SOCKET) as name:
                reader, writer = await asyncio.open_unix_connection(name)
            writer.write(b'{"op": "format-disk"}\n')
            answer = await reader.readline()
            writer.close()
            return answer
        finally:
            owner.close()

    assert "expected" in json.loads(asyncio.run(scenario()))["error"]
