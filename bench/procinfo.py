"""What the operating system says about our processes: CPU time, memory, CPU placement.

psutil reads them (CPU times, RSS and PSS, the process tree, threads, the machine). Two things
stay our own: CPU time of this process comes from ``getrusage`` (microseconds, where psutil
reads clock ticks of usually 10 ms from /proc), and CPU placement is per *thread*
(``sched_{get,set}affinity`` on each thread id psutil lists), because a pinned process's
threads can differ and threads created later inherit their creator's mask. All figures
include threads that have already ended.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

MIB = 1024 * 1024
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


def self_cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads (microsecond resolution)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0.0 if it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except _GONE:
        return 0.0
    return times.user + times.system


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a container's init and the shim it runs)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except _GONE:
        return [pid]
    return [pid, *(child.pid for child in children)]


def memory_mb(pid: int) -> dict[str, float | None]:
    """RSS and PSS of ``pid`` in MiB. PSS divides shared pages among their sharers, so for
    fork-server children (which share the interpreter copy-on-write) it is the fairer cost."""
    try:
        process = psutil.Process(pid)
        rss = process.memory_info().rss / MIB
    except _GONE:
        return {"rss_mb": None, "pss_mb": None}
    try:
        pss: float | None = process.memory_full_info().pss / MIB
    except (*_GONE, AttributeError):  # PSS: Linux only, and our own processes only
        pss = None
    return {"rss_mb": rss, "pss_mb": pss}


def tree_memory_mb(pids: Iterable[int]) -> dict[str, float | None]:
    """RSS and PSS summed over several processes (one instance's process tree)."""
    parts = [memory_mb(pid) for pid in pids]
    rss = [m["rss_mb"] for m in parts if m["rss_mb"] is not None]
    pss = [m["pss_mb"] for m in parts if m["pss_mb"] is not None]
    return {"rss_mb": sum(rss) if rss else None, "pss_mb": sum(pss) if pss else None}


def _threads(pid: int) -> list[int]:
    try:
        return [thread.id for thread in psutil.Process(pid or os.getpid()).threads()]
    except _GONE:
        return []


def affinity(pid: int = 0) -> list[int]:
    """The CPUs the process may run on: the union over its threads (they can differ)."""
    cpus: set[int] = set()
    for tid in _threads(pid) or [pid]:
        with contextlib.suppress(OSError):
            cpus |= os.sched_getaffinity(tid)
    return sorted(cpus)


def pin(pid: int, cpus: Iterable[int]) -> None:
    """Restrict every thread of ``pid`` to ``cpus``. (``sched_setaffinity`` acts on one thread;
    threads created later inherit their creator's mask, so pin before they are made or again
    afterwards.)"""
    mask = set(cpus)
    for tid in _threads(pid):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, mask)


def describe_cpus(cpus: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    ordered = sorted(set(cpus))
    if not ordered:
        return "-"
    parts = []
    start = prev = ordered[0]
    for cpu in [*ordered[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts)


def placement(pinned: bool, chaincode_pids: Iterable[int] = ()) -> dict[str, Any]:
    """Where the peer and its chaincode processes may run, recorded with every figure."""
    pids = list(chaincode_pids)
    chaincode: set[int] = set()
    for pid in pids:
        chaincode.update(affinity(pid))
    return {
        "pinned": pinned,
        "peer_cpus": affinity(),
        "chaincode_cpus": sorted(chaincode),
        "chaincode_pids": pids,
    }


def short_placement(where: dict[str, Any]) -> str:
    """Where a figure was measured, in words: ``not pinned: peer on CPUs 0-1, chaincode on
    CPUs 0-1``."""

    def cpus(which: str) -> str:
        listed = sorted(where.get(which) or [])
        if not listed:
            return ""
        return f"CPU{'s' if len(listed) > 1 else ''} {describe_cpus(listed)}"

    peer, chaincode = cpus("peer_cpus"), cpus("chaincode_cpus")
    words = f"peer on {peer or 'any CPU'}" + (f", chaincode on {chaincode}" if chaincode else "")
    return f"{'pinned' if where.get('pinned') else 'not pinned'}: {words}"


def loadavg() -> list[float]:
    return [round(x, 2) for x in psutil.getloadavg()]


def _cpu_model() -> str:
    # psutil does not name the CPU; /proc/cpuinfo does (Linux), platform may elsewhere.
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine a run came from, for the results file."""
    return {
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_count": psutil.cpu_count(),
        "usable_cpus": sorted(psutil.Process().cpu_affinity()),
        "memory_mb": round(psutil.virtual_memory().total / MIB),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {
            name: _version(name)
            for name in (
                "ccactors",
                "pykka",
                "grpcio",
                "protobuf",
                "msgpack",
                "psutil",
                "matplotlib",
            )
        },
        "git": _git_revision(),
        "loadavg_start": loadavg(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
