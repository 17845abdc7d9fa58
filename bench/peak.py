"""Peak resident memory of this process, for the benchmarks that measure each variant in a fresh process."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb() -> float:
    """VmHWM, the high-water mark of this process's resident memory, in MiB.

    Not ``getrusage().ru_maxrss``: Linux carries it across fork and exec, so a child started by a parent
    that holds a loaded model reports the parent's memory instead of its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
