"""What the webhook fuzzing knows of each vendor: how it signs, and what its payloads look like.

Signatures are computed here the way each vendor computes them (as the vendor tests do), not with
the service's own helpers. Payload shapes come from the vendor module itself: every short string
constant in it (field names, event types, states) is a key or a value the fuzzing may draw, so
random payloads reach the normaliser's branches without a hand-kept list.
"""

from __future__ import annotations

import ast
import base64
import hmac
import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from hypothesis import strategies as st
from standardwebhooks import Webhook

from feedback.webhooks import freshdesk, front, generic, helpscout, intercom, zendesk
from roadmap.webhooks import github, gitlab, jira, linear

Signer = Callable[[str, bytes, float], dict[str, str]]


def _hmac(secret: str | bytes, message: bytes, digest: str) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, digest).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _zendesk(secret: str, body: bytes, now: float) -> dict[str, str]:
    stamp = datetime.fromtimestamp(now, tz=UTC).isoformat()
    return {
        "X-Zendesk-Webhook-Signature": _b64(_hmac(secret, stamp.encode() + body, "sha256")),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def _front(secret: str, body: bytes, now: float) -> dict[str, str]:
    stamp = str(int(now * 1000))
    return {
        "X-Front-Signature": _b64(_hmac(secret, f"{stamp}:".encode() + body, "sha256")),
        "X-Front-Request-Timestamp": stamp,
    }


def standard_webhooks(secret: str, body: bytes, now: float, message_id: str) -> dict[str, str]:
    """Standard Webhooks headers, as a sender signs them with the reference package."""
    sender = Webhook(secret if secret.startswith("whsec_") else secret.encode())
    sent_at = datetime.fromtimestamp(int(now), tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": sender.sign(message_id, sent_at, body),
    }


SIGNERS: dict[str, Signer] = {
    "zendesk": _zendesk,
    "intercom": lambda s, b, _: {"X-Hub-Signature": "sha1=" + _hmac(s, b, "sha1").hex()},
    "freshdesk": lambda s, _b, _n: {"X-Prodops-Secret": s},
    "helpscout": lambda s, b, _: {"X-HelpScout-Signature": _b64(_hmac(s, b, "sha1"))},
    "front": _front,
    "generic": lambda s, b, n: standard_webhooks(s, b, n, "msg_fuzz"),
    "github": lambda s, b, _: {"X-Hub-Signature-256": "sha256=" + _hmac(s, b, "sha256").hex()},
    "gitlab": lambda s, _b, _n: {"X-Gitlab-Token": s},
    # GitLab's newer scheme, the one with a timestamp.
    "gitlab-signed": lambda s, b, n: standard_webhooks(s, b, n, "msg_fuzz"),
    "jira": lambda s, b, _: {"X-Hub-Signature": "sha256=" + _hmac(s, b, "sha256").hex()},
    "linear": lambda s, b, _: {"Linear-Signature": _hmac(s, b, "sha256").hex()},
}


def vocabulary(module: ModuleType) -> list[str]:
    """The short string constants of a vendor module: its field names, event types and states."""
    found = {
        node.value
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    words = {word for word in found if 0 < len(word) <= 40 and "\n" not in word}
    # "Issue.create" is also the type "Issue" and the action "create" of a Linear body.
    return sorted(words | {part for word in words for part in word.split(".") if part})


def json_values(words: list[str]) -> st.SearchStrategy[Any]:
    """Any JSON value, with the vendor's words as keys and values; numbers of any size."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
        | st.sampled_from(words)
    )
    keys = st.sampled_from(words) | st.text(max_size=6)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=6),
        max_leaves=30,
    )


def _words(module: ModuleType) -> st.SearchStrategy[str]:
    return st.sampled_from(vocabulary(module))


@dataclass(frozen=True)
class Vendor:
    """One provider as the fuzzing sees it."""

    name: str
    module: ModuleType
    # Headers a delivery needs besides the signature (event names, delivery ids).
    headers: dict[str, st.SearchStrategy[str]] = field(default_factory=dict)
    # Body fields identify() needs, drawn over the random payload.
    fields: dict[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    # The signed header holding the send time, if the scheme has one.
    stamp: str | None = None

    def words(self) -> list[str]:
        """The vendor module's words (see `vocabulary`)."""
        return vocabulary(self.module)


# Mostly fresh ids, sometimes odd text: Hypothesis repeats its values, and a repeated delivery id
# is a redelivery (answered `duplicate`), which would keep most payloads from the normaliser.
_issued = itertools.count()
_fresh = st.builds(lambda: f"fuzz-{next(_issued)}")
_ids = _fresh | _fresh | st.text(min_size=1, max_size=30)
_numbers = st.integers(min_value=1, max_value=10**6)
_ascii_ids = _fresh


def _obj(module: ModuleType, **required: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A random object of the vendor's words, with the fields a normaliser needs on top."""
    words = vocabulary(module)
    extra = st.dictionaries(st.sampled_from(words), json_values(words), max_size=8)
    return st.builds(lambda more, fixed: {**more, **fixed}, extra, st.fixed_dictionaries(required))


def _one_of(words: list[str], module: ModuleType) -> st.SearchStrategy[str]:
    """Mostly the event names a normaliser acts on, sometimes any word of the vendor."""
    return st.sampled_from(words) | _words(module)


VENDORS: dict[str, Vendor] = {
    v.name: v
    for v in (
        Vendor(
            "zendesk",
            zendesk,
            fields={
                "type": _words(zendesk).map(lambda w: "zen:event-type:ticket." + w),
                "id": _ids,
                "detail": _obj(zendesk, id=_ids | _numbers),
            },
            stamp="X-Zendesk-Webhook-Signature-Timestamp",
        ),
        Vendor(
            "intercom",
            intercom,
            fields={
                "topic": _one_of(sorted(intercom.TOPICS), intercom),
                "id": _ids,
                "data": st.fixed_dictionaries(
                    {"item": _obj(intercom, type=st.just("conversation"), id=_ids)}
                ),
            },
        ),
        Vendor(
            "freshdesk", freshdesk, fields={"freshdesk_webhook": _obj(freshdesk, ticket_id=_ids)}
        ),
        Vendor(
            "helpscout",
            helpscout,
            headers={
                "X-HelpScout-Event": _one_of(
                    ["convo.created", "convo.updated", "convo.deleted", "satisfaction.ratings"],
                    helpscout,
                ).filter(str.strip)
            },
            fields={"id": _ids | _numbers},
        ),
        Vendor(
            "front",
            front,
            fields={
                "type": _one_of(["tag", "untag", "inbound", "archive", "reopen"], front),
                "id": _ids,
                "conversation": _obj(front, id=_ids),
            },
            stamp="X-Front-Request-Timestamp",
        ),
        Vendor(
            "generic",
            generic,
            fields={
                "type": _one_of(["ticket.upserted"], generic),
                "data": _obj(generic, external_id=_ids),
            },
            stamp="webhook-timestamp",
        ),
        Vendor(
            "github",
            github,
            headers={
                "X-GitHub-Event": _one_of(["issues", "pull_request"], github),
                "X-GitHub-Delivery": _ascii_ids,
            },
            fields={
                "action": _words(github),
                "issue": _obj(github, id=_numbers, number=_numbers),
                "pull_request": _obj(github, id=_numbers, number=_numbers),
                "repository": _obj(github, full_name=_ids),
            },
        ),
        Vendor(
            "gitlab",
            gitlab,
            headers={
                "X-Gitlab-Event": _one_of(["Issue Hook", "Merge Request Hook"], gitlab),
                "X-Gitlab-Event-UUID": _ascii_ids,
            },
            fields={
                "object_attributes": _obj(gitlab, id=_numbers, iid=_numbers),
                "project": _obj(gitlab, path_with_namespace=_ids),
            },
            stamp="webhook-timestamp",
        ),
        Vendor(
            "jira",
            jira,
            fields={
                "webhookEvent": _one_of(["jira:issue_created", "jira:issue_updated"], jira),
                "issue": _obj(jira, id=_ids, key=_ids, fields=_obj(jira)),
            },
        ),
        Vendor(
            "linear",
            linear,
            fields={
                "type": _one_of(["Issue"], linear),
                "action": _one_of(["create", "update", "remove"], linear),
                "data": _obj(linear, id=_ids, identifier=_ids),
            },
        ),
    )
}
SERVICES = {
    "feedback": ["zendesk", "intercom", "freshdesk", "helpscout", "front", "generic"],
    "roadmap": ["github", "gitlab", "jira", "linear"],
}
