"""Random histories of the facts the contributions read, as the events that carry them.

A history is every version of a few accounts, objectives, items and feedback (merged, archived,
deleted, linked to items that never exist), in the order they were made, and an order to send
them in: so versions arrive out of order, and the facts are what the version gate keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from insights.rules.policies import FeedbackWeightPolicy, PriorityFactors
from prodops.contract import Event, new_id
from signal_events import Builder, days_ago

# Few names, so that feedback, items, objectives and accounts meet often.
ACCOUNTS = ("acme", "beta")
OBJECTIVES = ("O1", "O2", "O3")
ITEMS = ("K-0", "K-1", "K-2", "K-3")
FEEDBACK = tuple(f"f{n}" for n in range(10))
# Far from the edges of every window below: the moment of computation may move a little.
DAYS = (1, 45, 100, 170, 200, 400)
POLICIES = (
    FeedbackWeightPolicy(),
    FeedbackWeightPolicy(priority_factors=PriorityFactors(urgent=5.0, high=1.0), arr_scale=1e3),
    FeedbackWeightPolicy(window_days=60, half_life_days=30),
)
Step = tuple[str, str, dict[str, Any] | None]  # aggregate, name, its state (None: deleted)


@dataclass(frozen=True)
class History:
    """Versions of each aggregate in the order they were made, and the order they are sent."""

    steps: list[Step]
    order: list[int]
    policy: FeedbackWeightPolicy


_ITEM_STATES = st.fixed_dictionaries(
    {
        "status": st.sampled_from(
            ("planned", "shipped", "in_progress", "shipped", "idea", "dropped")
        ),
        "effort": st.sampled_from((0.5, 1.0, 2.0, 3.0)),
        "area": st.sampled_from((None, "billing", "search")),
        "objectives": st.lists(st.sampled_from(OBJECTIVES), max_size=2, unique=True),
        "shipped_days": st.sampled_from((*DAYS, None)),
    }
)
_FEEDBACK_STATES = st.fixed_dictionaries(
    {
        "account": st.sampled_from((None, *ACCOUNTS, "delta")),  # delta: no account facts
        "customer": st.sampled_from((None, "ann@example.com", "bob@example.com")),
        "priority": st.sampled_from(("low", "normal", "high", "urgent")),
        "days": st.sampled_from(DAYS),
        # K-9: an item that never exists.
        "items": st.lists(st.sampled_from((*ITEMS, "K-9")), min_size=1, max_size=2, unique=True),
        "tags": st.lists(st.sampled_from(("billing", "sso", "export")), max_size=2, unique=True),
        "status": st.sampled_from(("open", "open", "open", "archived")),
        "merged_into": st.sampled_from((None, None, None, None, "f0", "f1", "f2")),
    }
)
_OBJECTIVE_STATES = st.sampled_from(("active", "active", "achieved")).map(lambda s: {"status": s})
_DELETED = st.sampled_from((False, False, False, False, True))
_ACCOUNT_STATES = st.sampled_from((0.0, 900.0, 5_000.0, 50_000.0)).map(lambda arr: {"arr": arr})


@st.composite
def histories(draw: st.DrawFn) -> History:
    """A random history of accounts, objectives, items and feedback, sent in a random order."""
    steps: list[Step] = []
    for name in ACCOUNTS:
        steps += [("account", name, s) for s in draw(st.lists(_ACCOUNT_STATES, max_size=2))]
    kinds = (("objective", OBJECTIVES, _OBJECTIVE_STATES), ("item", ITEMS, _ITEM_STATES))
    for kind, names, state in (*kinds, ("feedback", FEEDBACK, _FEEDBACK_STATES)):
        for name in names:
            versions: list[dict[str, Any] | None] = draw(st.lists(state, min_size=1, max_size=2))
            if draw(_DELETED):
                versions.append(None)
            steps += [(kind, name, s) for s in versions]
    order = draw(st.permutations(range(len(steps))))
    return History(steps, list(order), draw(st.sampled_from(POLICIES)))


def _item_state(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "status": status,
        "effort": 1.0,
        "area": None,
        "objectives": [],
        "shipped_days": None,
    } | fields


def _feedback_state(*items: str, **fields: Any) -> dict[str, Any]:
    return {
        "account": None,
        "customer": None,
        "priority": "normal",
        "days": 1,
        "items": list(items),
        "tags": [],
        "status": "open",
        "merged_into": None,
    } | fields


_EVERY_RULE: list[Step] = [
    ("account", "acme", {"arr": 50_000.0}),
    ("objective", "O1", {"status": "active"}),
    ("objective", "O2", {"status": "active"}),
    ("objective", "O3", {"status": "active"}),
    ("objective", "O3", {"status": "achieved"}),
    (
        "item",
        "K-0",
        _item_state("planned", effort=3.0, area="billing", objectives=["O1", "O2", "O3"]),
    ),
    ("item", "K-1", _item_state("planned", area="search")),
    ("item", "K-1", _item_state("shipped", area="search", shipped_days=400)),  # shipped long ago
    ("item", "K-2", _item_state("shipped", effort=2.0, objectives=["O1"], shipped_days=1)),
    ("item", "K-3", _item_state("idea", area="billing")),
    (
        "feedback",
        "f0",
        _feedback_state("K-1", account="acme", priority="low", days=45, tags=["sso"]),
    ),
    ("feedback", "f1", _feedback_state("K-0", account="acme", priority="urgent", merged_into="f0")),
    ("feedback", "f2", _feedback_state("K-2", "K-9", customer="ann@example.com", tags=["export"])),
    ("feedback", "f3", _feedback_state("K-3", status="archived")),
    ("feedback", "f4", _feedback_state("K-3", days=400)),
    ("feedback", "f5", _feedback_state("K-0", days=45)),
    ("feedback", "f5", None),
    ("feedback", "f6", _feedback_state("K-3", days=45, priority="high")),
    ("feedback", "f7", _feedback_state(account="acme", days=100, merged_into="f0")),
]
# Every rule at least once, whatever Hypothesis draws; sent newest first, under a short window.
EVERY_RULE = History(_EVERY_RULE, list(range(len(_EVERY_RULE)))[::-1], POLICIES[2])


def events_of(history: History, ws: str) -> list[Event]:
    """The history's events in workspace `ws`, in the order they are sent."""
    b = Builder(ws)
    for kind, names in (("objective", OBJECTIVES), ("item", ITEMS), ("feedback", FEEDBACK)):
        for name in names:
            b.ids.setdefault(f"{kind}:{name}", new_id())  # named before they first appear
    made = [_event(b, kind, name, state) for kind, name, state in history.steps]
    return [made[n] for n in history.order]


def _event(b: Builder, kind: str, name: str, state: dict[str, Any] | None) -> Event:
    if state is None:
        return b.deleted(kind, name)
    if kind == "account":
        return b.account(name, state["arr"])
    if kind == "objective":
        return b.objective(name, 1.0, state["status"])
    if kind == "item":
        shipped = state["shipped_days"]
        return b.item(
            name,
            status=state["status"],
            effort=state["effort"],
            area=state["area"],
            objectives=tuple(state["objectives"]),
            shipped_at=None if shipped is None else days_ago(shipped),
        )
    return b.feedback(
        name,
        account_external_id=state["account"],
        customer={"email": state["customer"]} if state["customer"] else None,
        priority=state["priority"],
        created_at=days_ago(state["days"]),
        item_keys=state["items"],
        tags=state["tags"],
        status=state["status"],
        merged_into=state["merged_into"] if state["merged_into"] != name else None,
    )
