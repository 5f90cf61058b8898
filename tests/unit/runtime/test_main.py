"""The CLI's start-up cost is paid by every container start: keep heavy imports off it."""

from __future__ import annotations

import subprocess
import sys

#: Modules the container path must not load: they are only for `guest build`,
#: `install` and the shim, and each costs milliseconds and monitor memory.
HEAVY = ("rich", "google.protobuf", "matplotlib")


def test_parser_and_run_path_leave_heavy_modules_alone() -> None:
    probe = (
        "import sys\n"
        "from strongbox.runtime.main import build_parser\n"
        "import strongbox.runtime.container, strongbox.runtime.daemon\n"
        "build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
