"""The event contract: the CloudEvents 1.0 envelope and the catalogue of design.md §3.

Every event is a fact in the past tense, versioned in its type (`prodops.feedback.received.v1`).
State-carrying events (`*.upserted`, and every `feedback.*` but `feedback.deleted`) carry the
aggregate's `version`; consumers apply one only when it is newer than what they hold.
"""

from prodops.contract.base import (
    WORKSPACE_PATTERN as WORKSPACE_PATTERN,
)
from prodops.contract.base import (
    EventData as EventData,
)
from prodops.contract.base import (
    Priority as Priority,
)
from prodops.contract.base import (
    StateData as StateData,
)
from prodops.contract.base import (
    TrackerPriority as TrackerPriority,
)
from prodops.contract.base import (
    Workspace as Workspace,
)
from prodops.contract.base import (
    is_workspace as is_workspace,
)
from prodops.contract.base import (
    new_id as new_id,
)
from prodops.contract.base import (
    utcnow as utcnow,
)
from prodops.contract.catalogue import (
    CATALOGUE as CATALOGUE,
)
from prodops.contract.catalogue import (
    EMITTED_BY as EMITTED_BY,
)
from prodops.contract.catalogue import (
    AccountUpserted as AccountUpserted,
)
from prodops.contract.catalogue import (
    AlignmentChanged as AlignmentChanged,
)
from prodops.contract.catalogue import (
    Change as Change,
)
from prodops.contract.catalogue import (
    ChecklistEntry as ChecklistEntry,
)
from prodops.contract.catalogue import (
    Customer as Customer,
)
from prodops.contract.catalogue import (
    Deleted as Deleted,
)
from prodops.contract.catalogue import (
    FeedbackDeleted as FeedbackDeleted,
)
from prodops.contract.catalogue import (
    FeedbackLinked as FeedbackLinked,
)
from prodops.contract.catalogue import (
    FeedbackMerged as FeedbackMerged,
)
from prodops.contract.catalogue import (
    FeedbackReceived as FeedbackReceived,
)
from prodops.contract.catalogue import (
    FeedbackSource as FeedbackSource,
)
from prodops.contract.catalogue import (
    FeedbackState as FeedbackState,
)
from prodops.contract.catalogue import (
    FeedbackUnlinked as FeedbackUnlinked,
)
from prodops.contract.catalogue import (
    FeedbackUpdated as FeedbackUpdated,
)
from prodops.contract.catalogue import (
    ItemDeleted as ItemDeleted,
)
from prodops.contract.catalogue import (
    ItemUpserted as ItemUpserted,
)
from prodops.contract.catalogue import (
    LaunchDeleted as LaunchDeleted,
)
from prodops.contract.catalogue import (
    LaunchReadinessChanged as LaunchReadinessChanged,
)
from prodops.contract.catalogue import (
    LaunchUpserted as LaunchUpserted,
)
from prodops.contract.catalogue import (
    ObjectiveDeleted as ObjectiveDeleted,
)
from prodops.contract.catalogue import (
    ObjectiveUpserted as ObjectiveUpserted,
)
from prodops.contract.catalogue import (
    Reason as Reason,
)
from prodops.contract.catalogue import (
    TrackerCycle as TrackerCycle,
)
from prodops.contract.catalogue import (
    TrackerIssueDeleted as TrackerIssueDeleted,
)
from prodops.contract.catalogue import (
    TrackerIssueUpserted as TrackerIssueUpserted,
)
from prodops.contract.envelope import (
    Event as Event,
)
from prodops.contract.envelope import (
    UnknownEventTypeError as UnknownEventTypeError,
)
from prodops.contract.envelope import (
    envelope_model as envelope_model,
)
from prodops.contract.envelope import (
    make_event as make_event,
)
from prodops.contract.envelope import (
    type_tokens as type_tokens,
)
