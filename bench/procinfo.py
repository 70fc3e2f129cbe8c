"""What the operating system says about our processes: CPU time, memory, CPU placement.

Everything comes from ``/proc`` (Linux), so no extra dependency is needed. CPU time of another
process is ``utime + stime`` from ``/proc/<pid>/stat`` (clock ticks, usually 10 ms; a
measurement window of a second or more keeps that below 1 %); our own is ``getrusage``
(microseconds). Both include threads that have already ended.
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

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads (microsecond resolution)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0.0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a container's init and the shim it runs)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def memory_mb(pid: int) -> dict[str, float | None]:
    """RSS and PSS of ``pid`` in MiB. PSS divides shared pages among their sharers, so for
    fork-server children (which share the interpreter copy-on-write) it is the fairer cost."""
    rss = pss = None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
                break
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
                break
    return {"rss_mb": rss, "pss_mb": pss}


def tree_memory_mb(pids: Iterable[int]) -> dict[str, float | None]:
    """RSS and PSS summed over several processes (one instance's process tree)."""
    parts = [memory_mb(pid) for pid in pids]
    rss = [m["rss_mb"] for m in parts if m["rss_mb"] is not None]
    pss = [m["pss_mb"] for m in parts if m["pss_mb"] is not None]
    return {"rss_mb": sum(rss) if rss else None, "pss_mb": sum(pss) if pss else None}


def _tasks(pid: int) -> list[int]:
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def affinity(pid: int = 0) -> list[int]:
    """The CPUs the process may run on: the union over its threads (they can differ)."""
    cpus: set[int] = set()
    for tid in _tasks(pid or os.getpid()) or [pid]:
        with contextlib.suppress(OSError):
            cpus |= os.sched_getaffinity(tid)
    return sorted(cpus)


def pin(pid: int, cpus: Iterable[int]) -> None:
    """Restrict every thread of ``pid`` to ``cpus``. (``sched_setaffinity`` acts on one thread;
    threads created later inherit their creator's mask, so pin before they are made or again
    afterwards.)"""
    mask = set(cpus)
    for tid in _tasks(pid or os.getpid()):
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
    flag = "pinned" if where.get("pinned") else "free"
    peer = describe_cpus(where.get("peer_cpus", []))
    cc = describe_cpus(where.get("chaincode_cpus", []))
    return f"{flag} p{peer} c{cc}"


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_mb() -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024)
    return None


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
        "cpu_count": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "memory_mb": _mem_total_mb(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {
            name: _version(name)
            for name in ("ccactors", "pykka", "grpcio", "protobuf", "msgpack", "matplotlib")
        },
        "git": _git_revision(),
        "loadavg_start": loadavg(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
