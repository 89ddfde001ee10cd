"""``peephole run`` works in an agent-only install on every interpreter the agent supports.

The console script imports ``peephole.cli.main``, which imports every command group and the
client's models; a 3.10+ construct anywhere on that path (``dataclasses.field(kw_only=...)``
did it once) breaks ``peephole run`` on 3.9 at import time, before any command runs.
"""

from __future__ import annotations

import subprocess
import sys


def test_peephole_run_starts_on_this_interpreter() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peephole.cli.main", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and result.stderr == ""
