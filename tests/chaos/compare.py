"""Live signals against a clean rebuild: what insights shows after a fault is what replay gives."""

from __future__ import annotations

import math
import re
import signal
from typing import Any

import httpx
from chaos.stack import Stack

SIGNALS = (
    "/v1/signals/launches?limit=200",
    "/v1/signals/alignment",
    "/v1/signals/alignment/areas?limit=200",
    "/v1/demand?limit=200",
)
# When a signal was computed or last changed differs between the live run and the replay.
_VOLATILE = {"computed_at", "changed_at"}
# Scores are rounded to one decimal and sums kept in another order by the replay, so a value on
# a rounding edge may land 0.1 away; a lost or doubled event moves them further.
_TOLERANCE = 0.1 + 1e-9
_REBUILT = re.compile(r"(\d+) messages read: (\d+) applied, (\d+) skipped, (\d+) failed")


async def read_signals(stack: Stack) -> dict[str, Any]:
    """What insights answers for every signal endpoint, without the volatile timestamps."""
    headers = {"Authorization": f"Bearer {stack.token()}"}
    answers: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=stack.url("insights"), headers=headers) as http:
        for path in SIGNALS:
            answer = await http.get(path)
            assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
            answers[path] = _stripped(answer.json())
    demand = answers["/v1/demand?limit=200"]
    # Ranked by sums the replay adds up in another order: compare by name, not by rank.
    demand["items"].sort(key=lambda item: item["key"])
    demand["tags"].sort(key=lambda tag: tag["tag"])
    return answers


def _stripped(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stripped(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stripped(v) for v in value]
    return value


def differences(live: Any, rebuilt: Any, path: str = "") -> list[str]:
    """Where two answers differ (floats within the rounding tolerance count as equal)."""
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        found = []
        for key in sorted(set(live) | set(rebuilt)):
            if key not in live or key not in rebuilt:
                found.append(f"{path}.{key}: only in {'live' if key in live else 'rebuilt'}")
            else:
                found += differences(live[key], rebuilt[key], f"{path}.{key}")
        return found
    if isinstance(live, list) and isinstance(rebuilt, list):
        if len(live) != len(rebuilt):
            return [f"{path}: {len(live)} entries live, {len(rebuilt)} rebuilt"]
        return [
            d
            for i, pair in enumerate(zip(live, rebuilt, strict=True))
            for d in differences(*pair, f"{path}[{i}]")
        ]
    numbers = (int, float)
    if isinstance(live, numbers) and isinstance(rebuilt, numbers) and not isinstance(live, bool):
        if math.isclose(live, rebuilt, rel_tol=1e-6, abs_tol=_TOLERANCE):
            return []
    elif live == rebuilt:
        return []
    return [f"{path}: live {live!r}, rebuilt {rebuilt!r}"]


async def rebuild_matches_live(stack: Stack) -> tuple[int, int]:
    """Stop insights, rebuild, start it again: the signals must read the same as before."""
    live = await read_signals(stack)
    await stack.kill_service("insights", signal.SIGTERM)
    report = await stack.cli("insights", "rebuild")
    await stack.start_service("insights")
    rebuilt = await read_signals(stack)
    found = differences(live, rebuilt)
    assert not found, "live signals differ from a clean rebuild:\n" + "\n".join(found[:40])
    match = _REBUILT.search(report)
    assert match is not None, report
    messages, applied, _skipped, failed = map(int, match.groups())
    assert failed == 0, report
    return messages, applied
