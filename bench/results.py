"""Figures beside their baseline and target: printed, written as JSON, gathered in `latest.md`."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stack import postgres_settings

RESULTS = Path(__file__).parent / "results"
ORDER = ("ingest", "freshness", "history", "rebuild", "reads", "memory")


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank q-th percentile of an ascending list (nan when empty)."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for reading."""
    return round(seconds * 1000, 2)


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "postgres_settings": postgres_settings(),
        # Other work on the machine competes for the same cores: the figures move with it.
        "load_average_1m_at_save": round(os.getloadavg()[0], 2),
        "kernel_writeback": kernel_writeback(),
    }


def kernel_writeback() -> dict[str, int]:
    """When Linux writes dirty pages out: a large burst stalls every WAL flush behind it."""
    settings = {}
    for name in ("dirty_background_bytes", "dirty_background_ratio", "dirty_expire_centisecs"):
        with contextlib.suppress(OSError, ValueError):  # not Linux
            settings[name] = int(Path(f"/proc/sys/vm/{name}").read_text())
    return settings


@dataclass(frozen=True)
class Figure:
    """One measured number, the baseline of the same run it is set against, and its target."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    passed: bool | None = None  # None: reported, no target

    @property
    def ratio(self) -> float | None:
        """value / baseline."""
        if self.baseline is None or self.baseline == 0 or math.isnan(self.value):
            return None
        return round(self.value / self.baseline, 3)


@dataclass
class Report:
    """What one benchmark measured."""

    benchmark: str
    mode: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    measured_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    machine: dict[str, Any] = field(default_factory=machine)


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def _verdict(figure: Figure) -> str:
    return {True: "PASS", False: "MISS", None: "reported"}[figure.passed]


def show(report: Report) -> None:
    """Print a report's figures, one per line."""
    print(f"\n== {report.benchmark} ({report.mode}) ==")
    for f in report.figures:
        base = (
            f"{_number(f.baseline)} {f.unit} ({f.baseline_name})" if f.baseline is not None else "-"
        )
        print(
            f"  {f.name:<32} {_number(f.value):>12} {f.unit:<8} baseline {base}  "
            f"ratio {_number(f.ratio)}  target {f.target or '-'}  {_verdict(f)}"
        )


def save(report: Report) -> Path:
    """Write `results/<benchmark>.json`, regenerate `results/latest.md`; the JSON path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{report.benchmark}.json"
    data = asdict(report)
    for figure, raw in zip(report.figures, data["figures"], strict=True):
        raw["ratio"] = figure.ratio
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / "latest.md").write_text(latest_table())
    return path


def latest_table() -> str:
    """The Markdown table of every benchmark's latest figures."""
    lines = [
        "| benchmark | figure | value | baseline (same run) | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    stamps = []
    for name in ORDER:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        stamps.append(f"{name} {data['measured_at']} ({data['mode']})")
        for f in data["figures"]:
            figure = Figure(**{k: v for k, v in f.items() if k != "ratio"})
            base = (
                "-"
                if figure.baseline is None
                else f"{_number(figure.baseline)} {figure.unit}, {figure.baseline_name}"
            )
            lines.append(
                f"| {name} | {figure.name} | {_number(figure.value)} {figure.unit} | {base} | "
                f"{_number(figure.ratio)} | {figure.target or '-'} | {_verdict(figure)} |"
            )
    machine_info = machine()
    lines += [
        "",
        f"Measured on {machine_info['cpus']} CPUs, {machine_info['platform']}, "
        f"Python {machine_info['python']}, PostgreSQL shared_buffers "
        f"{machine_info['postgres_settings']['shared_buffers']}: " + "; ".join(stamps) + ".",
    ]
    return "\n".join(lines) + "\n"
