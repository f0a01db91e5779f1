"""`python -m bench [names…] [--full]`: start the stack, run benchmarks, print and save figures."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import warnings
from pathlib import Path

from bench import freshness, history, ingest, reads, rebuild
from bench.memory import MemorySampler, high_water_mark
from bench.results import Figure, Report, save, show
from bench.stack import COMMANDS, Stack, start_stack

NAMES = ("ingest", "freshness", "reads", "history", "rebuild")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*NAMES, []], help="default: all")
    parser.add_argument("--full", action="store_true", help="the issue's sizes (slow)")
    parser.add_argument("--workers", type=int, default=1, help="load generator processes")
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL without fsync")
    parser.add_argument("--freshness-seconds", type=float, help="default 10, 60 with --full")
    parser.add_argument("--freshness-rate", type=float, default=1000.0, help="deliveries/s")
    parser.add_argument("--reads-rate", type=float, default=2000.0, help="requests/s")
    parser.add_argument(
        "--history-sizes", help="comma-separated; default 10000,100000 (full: 1000000)"
    )
    parser.add_argument("--rebuild-events", type=int, help="default 20000 (full: 200000)")
    return parser.parse_args()


async def _live(
    stack: Stack, args: argparse.Namespace, mode: str, names: list[str]
) -> list[Report]:
    """The benchmarks that drive the running services (1, 2, 5), with memory sampled over 1-2."""
    full, reports = args.full, []
    pids = {name: stack.processes[name].pid for name in (*COMMANDS, "baseline")}
    sampler = MemorySampler(pids)
    sampler.start()
    if "ingest" in names:
        options = ingest.IngestOptions(
            seconds=20 if full else 5, open_seconds=60 if full else 40, workers=args.workers
        )
        reports.append(await ingest.run(stack, options, mode))
    if "freshness" in names:
        seconds = args.freshness_seconds or (60.0 if full else 10.0)
        options_f = freshness.FreshnessOptions(
            rate=args.freshness_rate, seconds=seconds, workers=args.workers
        )
        reports.append(await freshness.run(stack, options_f, mode))
    peaks = await sampler.stop()
    if {"ingest", "freshness"} & set(names):
        reports.append(_memory(peaks, pids, mode))
    if "reads" in names:
        options_r = reads.ReadsOptions(
            rate=args.reads_rate, seconds=30 if full else 5, workers=args.workers
        )
        reports.append(await reads.run(stack, options_r, mode))
    return reports


async def _offline(
    stack: Stack, args: argparse.Namespace, mode: str, names: list[str]
) -> list[Report]:
    """Benchmarks 3 and 4: the insights engine in this process, each in a database of its own."""
    reports = []
    if "history" in names:
        default = "10000,1000000" if args.full else "10000,100000"
        sizes = tuple(int(n) for n in (args.history_sizes or default).split(","))
        options = history.HistoryOptions(sizes=sizes, probes=1000 if args.full else 300)
        reports.append(await history.run(stack, options, mode))
    if "rebuild" in names:
        events = args.rebuild_events or (200_000 if args.full else 20_000)
        reports.append(await rebuild.run(stack, rebuild.RebuildOptions(events=events), mode))
    return reports


def _memory(peaks: dict[str, float], pids: dict[str, int], mode: str) -> Report:
    """6. Peak RSS of each service over benchmarks 1-2, against the bare baseline server's."""
    report = Report("memory", mode)
    base = peaks.get("baseline")
    report.figures = [
        Figure(f"peak RSS {name}", peaks.get(name, 0.0), "MiB", base, "bare FastAPI server")
        for name in COMMANDS
    ]
    report.details = {
        "sampled_every_s": 0.1,
        "kernel_high_water_mark_mib": {name: high_water_mark(pid) for name, pid in pids.items()},
    }
    return report


async def main() -> None:
    """Run what was asked, printing and saving each report as it completes."""
    args = _arguments()
    names = args.names or list(NAMES)
    mode = "full" if args.full else "quick"
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
    with tempfile.TemporaryDirectory(prefix="prodops-bench-") as tmp:
        stack = await start_stack(Path(tmp), fsync=not args.no_fsync)
        try:
            for report in await _live(stack, args, mode, names):
                show(report)
                save(report)
            for name in COMMANDS:
                stack.stop_process(name)  # 3 and 4 run in this process; free the CPU
            for report in await _offline(stack, args, mode, names):
                show(report)
                save(report)
        finally:
            stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
