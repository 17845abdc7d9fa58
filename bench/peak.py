"""Fresh-process measurements for the benchmarks: run one variant in a child, read its own peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def in_fresh_process(script: str, *args: str) -> dict[str, Any]:
    """Run ``python SCRIPT ARGS`` and return the JSON object the child prints on its last line."""
    child = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """VmHWM, the high-water mark of this process's resident memory, in MiB.

    Not ``getrusage().ru_maxrss``: Linux carries it across fork and exec, so a child started by a parent
    that holds a loaded model reports the parent's memory instead of its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
