"""Peak resident memory of the service processes, sampled while benchmarks run."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIB = 1024 * 1024


@dataclass
class MemorySampler:
    """Samples the RSS of named processes every `interval` seconds and keeps each one's peak."""

    pids: dict[str, int]
    interval: float = 0.1
    peak: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sampling in the background."""
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> dict[str, float]:
        """Stop sampling; the peak RSS of each process in MiB."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return {name: round(value / MIB, 1) for name, value in self.peak.items()}

    async def _sample(self) -> None:
        processes = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        while True:
            for name, process in processes.items():
                with contextlib.suppress(psutil.Error):
                    rss = process.memory_info().rss
                    self.peak[name] = max(self.peak.get(name, 0), rss)
            await asyncio.sleep(self.interval)


def high_water_mark(pid: int) -> float | None:
    """The kernel's own peak RSS of a process (VmHWM, Linux only) in MiB, or None."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / MIB, 1)
    return None
