"""The chaos workload: a roadmap to link to, then a burst of GitHub deliveries and feedback.

Each call is retried, as a vendor or a tool would retry it, until it is answered 2xx: a call
that failed with a connection error or a 5xx while a process was down is not accepted yet, and
the dedup key it is sent again with (the GitHub delivery id, the feedback's external id) must
make it count once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from chaos.stack import Stack

from signing import github_delivery

TRACKER = "prodops.tracker_issue.upserted.v1"
FEEDBACK = "prodops.feedback.received.v1"
CALL_SECONDS = 90.0
LAUNCHES = (("L-SPRING", 30), ("L-SUMMER", 5), ("L-FALL", None))


@dataclass(frozen=True)
class Roadmap:
    """What the burst links to: item keys, launch keys and the GitHub source."""

    items: list[str]
    launches: list[str]
    webhook_url: str
    secret: str


@dataclass(frozen=True)
class Call:
    """One request, sent until answered 2xx; `key` is what deduplicates its retries."""

    event_type: str
    key: str
    service: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Burst:
    """The calls of the burst in lanes (each lane in order), and which were accepted."""

    lanes: list[list[Call]]
    accepted: dict[str, set[str]] = field(default_factory=lambda: {TRACKER: set(), FEEDBACK: set()})
    retries: int = 0
    replayed: int = 0  # answered as stored already: an earlier try had committed

    @property
    def total(self) -> int:
        """How many calls the burst makes."""
        return sum(len(lane) for lane in self.lanes)

    def done(self) -> int:
        """How many calls were accepted so far."""
        return sum(len(keys) for keys in self.accepted.values())

    async def reached(self, share: float, within: float = CALL_SECONDS) -> None:
        """Wait until `share` of the calls were accepted: the fault lands mid-burst."""
        deadline = time.monotonic() + within
        while self.done() < share * self.total:
            if time.monotonic() > deadline:
                raise AssertionError(f"burst stuck at {self.done()} of {self.total} accepted")
            await asyncio.sleep(0.01)

    async def run(self, stack: Stack) -> None:
        """Send every lane concurrently, each call retried until accepted."""
        async with httpx.AsyncClient(timeout=10) as http:
            await asyncio.gather(*(self._lane(http, stack, lane) for lane in self.lanes))

    async def _lane(self, http: httpx.AsyncClient, stack: Stack, lane: list[Call]) -> None:
        for call in lane:
            await self._send(http, stack, call)

    async def _send(self, http: httpx.AsyncClient, stack: Stack, call: Call) -> None:
        deadline = time.monotonic() + CALL_SECONDS
        while True:
            try:
                answer: httpx.Response | None = await http.post(
                    stack.url(call.service) + call.path, content=call.body, headers=call.headers
                )
            except httpx.TransportError:  # down, killed mid-request, or not answering in time
                answer = None
            if answer is not None and answer.is_success:
                self.replayed += _replayed(call, answer)
                self.accepted[call.event_type].add(call.key)
                return
            if answer is not None and answer.status_code < 500:
                raise AssertionError(f"{call.key} refused: {answer.status_code} {answer.text}")
            if time.monotonic() > deadline:
                last = answer.text if answer is not None else "no answer"
                raise AssertionError(f"{call.key} not accepted within {CALL_SECONDS}s: {last}")
            self.retries += 1
            await asyncio.sleep(0.1)


def _replayed(call: Call, answer: httpx.Response) -> bool:
    """Whether the answer says the call was stored before (a retry after a lost answer)."""
    if call.event_type == TRACKER:
        status = answer.json()["status"]
        assert status in {"received", "duplicate"}, answer.text
        return bool(status == "duplicate")
    return answer.status_code == 200  # an existing external_id


async def prepare(stack: Stack, token: str) -> Roadmap:
    """Objectives, launches, items and a GitHub source, created over HTTP before the burst."""
    headers = {"Authorization": f"Bearer {token}"}
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=stack.url("roadmap"), headers=headers) as http:
        objectives = [
            (await _created(http, "/v1/objectives", {"name": name, "weight": weight}))["id"]
            for name, weight in (("Grow revenue", 3), ("Reduce churn", 1))
        ]
        launches = []
        for key, days in LAUNCHES:
            target = (today + timedelta(days=days)).isoformat() if days is not None else None
            launch = {"key": key, "name": f"Launch {key}", "target_date": target}
            launches.append(await _created(http, "/v1/launches", launch))
        items = []
        for i in range(6):
            item: dict[str, Any] = {
                "title": f"Item {i}",
                "status": ("planned", "in_progress", "idea")[i % 3],
                "horizon": "now",
                "effort": i + 1,
                "area": ("billing", "search")[i % 2],
                "objective_ids": [objectives[i % 2]] if i != 5 else [],
                "launch_id": launches[i % 3]["id"],
            }
            items.append((await _created(http, "/v1/items", item))["key"])
        source = await _created(http, "/v1/sources", {"provider": "github", "name": "GitHub"})
    return Roadmap(
        items, [launch["key"] for launch in launches], source["webhook_url"], source["secret"]
    )


async def _created(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    answer = await http.post(path, json=body)
    assert answer.status_code == 201, f"POST {path}: {answer.status_code} {answer.text}"
    return answer.json()


def plan(roadmap: Roadmap, *, token: str, scale: int) -> Burst:
    """3 lanes of GitHub issue deliveries (opened, some closed later) and 2 lanes of feedback."""
    issues, feedback = 24 * scale, 24 * scale
    lanes = [_issue_lane(roadmap, [n for n in range(issues) if n % 3 == k]) for k in range(3)]
    lanes += [
        [_feedback(roadmap, token, n) for n in range(feedback) if n % 2 == k] for k in range(2)
    ]
    return Burst(lanes)


def _issue_lane(roadmap: Roadmap, numbers: list[int]) -> list[Call]:
    """Open each issue; close every fourth two steps later, so closes interleave with opens."""
    calls: list[Call] = []
    closing = [n for n in numbers if n % 4 == 0]
    for index, n in enumerate(numbers):
        calls.append(_issue(roadmap, n, closed=False))
        if index >= 2 and numbers[index - 2] in closing:
            calls.append(_issue(roadmap, numbers[index - 2], closed=True))
    calls += [_issue(roadmap, n, closed=True) for n in numbers[-2:] if n in closing]
    return calls


def _issue(roadmap: Roadmap, n: int, *, closed: bool) -> Call:
    labels = [f"roadmap:{roadmap.items[n % len(roadmap.items)]}"]
    labels += ["bug", "priority:high"] if n % 5 == 0 else []
    labels += ["blocker"] if n % 11 == 0 else []
    launch = roadmap.launches[n % len(roadmap.launches)] if n % 4 != 3 else None
    now = datetime.now(UTC).isoformat()
    issue = {
        "id": 10_000 + n,
        "number": n,
        "title": f"Issue {n}",
        "html_url": f"https://github.com/acme/shop/issues/{n}",
        "state": "closed" if closed else "open",
        "labels": [{"name": label} for label in labels],
        "milestone": {"title": launch} if launch else None,
        "assignees": [],
        "created_at": now,
        "closed_at": now if closed else None,
    }
    payload = {
        "action": "closed" if closed else "opened",
        "issue": issue,
        "repository": {"full_name": "acme/shop"},
    }
    body, headers = github_delivery(roadmap.secret, "issues", payload)
    return Call(
        TRACKER, headers["X-GitHub-Delivery"], "roadmap", roadmap.webhook_url, body, headers
    )


def _feedback(roadmap: Roadmap, token: str, n: int) -> Call:
    item = roadmap.items[(n * 7) % len(roadmap.items)]
    body = {
        "title": f"Request {n}",
        "body": "customers keep asking",
        "external_id": f"chaos-{n}",
        "tags": [f"roadmap-{item.lower()}"] if n % 4 else ["export"],
        "priority": ("low", "normal", "high", "urgent")[n % 4],
        "customer": {"email": f"user{n % 9}@example.com"},
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return Call(FEEDBACK, f"chaos-{n}", "feedback", "/v1/feedback", orjson.dumps(body), headers)
