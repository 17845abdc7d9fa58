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


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM, the high-water mark of this process's (or ``pid``'s) resident memory, in MiB.

    Not ``getrusage().ru_maxrss``: Linux carries it across fork and exec, so a child started by a parent
    that holds a loaded model reports the parent's memory instead of its own.
    """
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int | str = "self") -> float:
    """VmRSS, the resident memory of this process (or ``pid``) now, in MiB."""
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int | str, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status (Linux only)")
