"""Shared pieces of the benchmarks: a service process started production-like, latency statistics, and the
results file (`bench-results.json`, git-ignored)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results.json"
APPS = {
    "portal": "portal.main:app",
    "smarttab": "smarttab.main:app",
    "device-auth": "device_auth.main:app",
    "console": "console.main:app",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`uvicorn` as production runs it: uvloop, httptools, no access log, no reload."""

    def __init__(self, service: str, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.service = service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SMARTPOS_LOG_LEVEL": "WARNING", "SMARTPOS_ACCESS_LOG": "false", **(env or {})}
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", APPS[self.service], "--host", "127.0.0.1", "--port", str(self.port),
             "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--workers", str(self.workers)],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.service} did not become ready")

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn `--workers N` forks its workers)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                stack.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants, from /proc (the server's own account)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)
    return total


class ProcessCpu:
    """CPU seconds each named server process used over a phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def __enter__(self) -> ProcessCpu:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_seconds = time.monotonic() - self._wall
        self.seconds = {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}

    def ms_per(self, name: str, count: int) -> float | None:
        return round(self.seconds[name] * 1000 / count, 3) if count else None

    def cores(self) -> dict[str, float]:
        """Average cores each process kept busy over the phase."""
        return {name: round(used / self.wall_seconds, 3) for name, used in self.seconds.items()}


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat (busy: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return total - fields[3] - fields[4], total


def _program_ticks() -> dict[str, int]:
    """User + system clock ticks of every live process, summed by program name (comm)."""
    ticks: dict[str, int] = defaultdict(int)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue  # exited while we looked
        fields = rest.split()
        ticks[head.split("(", 1)[1]] += int(fields[11]) + int(fields[12])
    return ticks


class MachineCpu:
    """How busy the whole machine was over a phase, and which programs kept it busy (PostgreSQL backends,
    redis-server, nats-server, the Python processes...). Processes that exited during the phase are missed."""

    def __enter__(self) -> MachineCpu:
        self._busy, self._total = _machine_jiffies()
        self._programs = _program_ticks()
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        busy, total = _machine_jiffies()
        cores = os.cpu_count() or 1
        self.busy_share = round((busy - self._busy) / max(1, total - self._total), 3)
        self.cores_busy = round(self.busy_share * cores, 2)
        hz = os.sysconf("SC_CLK_TCK")
        now = _program_ticks()
        used = {name: (ticks - self._programs.get(name, 0)) / hz / wall for name, ticks in now.items()}
        self.programs = {name: round(c, 2) for name, c in sorted(used.items(), key=lambda kv: -kv[1]) if c >= 0.01}


def reference_ms() -> float:
    """How fast this machine is right now: milliseconds a fixed single-core workload (a Python loop and SHA-256
    over 8 MB) takes, best of three. The same code measured with a different `reference_ms` ran on a faster or
    slower (or busier) machine: compare figures only next to it."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        hashlib.sha256(b"x" * 8_000_000).digest()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


class CpuMeter:
    """CPU seconds this (load generator) process used over wall time: its share of the machine."""

    def __enter__(self) -> CpuMeter:
        self._cpu = self._now()
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_seconds = self._now() - self._cpu
        self.wall_seconds = time.monotonic() - self._wall

    @staticmethod
    def _now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def share(self) -> float:
        """Fraction of the machine's cores the generator kept busy."""
        return round(self.cpu_seconds / self.wall_seconds / (os.cpu_count() or 1), 3)


def save(section: str, figures: dict[str, Any]) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[section] = figures
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    print(f"\n{title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
