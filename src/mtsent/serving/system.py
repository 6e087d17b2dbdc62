"""What this machine grants the service: CPUs (the container's quota, not the host's cores) and loopback.

Free of web dependencies, so the CLI can use it for `mtsent ui` without the serve extra.
"""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path

__all__ = ["available_cpus", "cgroup_cpu_limit", "is_loopback"]


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by the cgroup quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = Path("/sys/fs/cgroup")) -> int:
    """Whole CPUs usable here: the smallest of the affinity mask and the cgroup quota (rounded up), at least 1."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(1, count)


def is_loopback(host: str) -> bool:
    """Whether listening on `host` accepts connections from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
