"""The narrow interfaces services depend on; adapters implement them, by concern.

Repositories are bound to one open transaction (`PaymentsTx`, `OrdersTx`), so a service
that writes a state change and the event it causes does it in one commit by construction.
Stored work (notifications, outboxes, refunds) is one shape, `WorkQueue`.
"""

from payrelay.domain.checkout import Checkout
from payrelay.domain.order import OrderLine
from payrelay.domain.refund import RefundRequest
from payrelay.ports.clock import Clock
from payrelay.ports.dead_letters import DeadLetter, DeadLetterBox
from payrelay.ports.gateway import Gateway, PaymentPage
from payrelay.ports.messaging import (
    DeadLetters,
    Inbox,
    InboxEntry,
    MessagingTx,
    MessagingUnitOfWork,
    Outbox,
    SeenMessage,
    Timeline,
    TimelineEntry,
)
from payrelay.ports.operations import (
    Backlog,
    Heartbeats,
    HeldRefund,
    Operations,
    PipelineStatus,
    Trace,
    TraceStep,
    UnknownRefund,
    WorkerBeat,
)
from payrelay.ports.orders import (
    Orders,
    OrdersTx,
    OrdersUnitOfWork,
    OrderUpdate,
    PaymentsClient,
)
from payrelay.ports.payments import (
    Checkouts,
    NotificationLog,
    NotificationRecord,
    Notifications,
    Payments,
    PaymentSave,
    PaymentsTx,
    PaymentsUnitOfWork,
    Refunds,
)
from payrelay.ports.queues import (
    ClaimedNotification,
    FailedTry,
    NotificationQueue,
    OutboxRelayStore,
    RefundQueue,
    WorkQueue,
)
from payrelay.ports.read_models import (
    OrderRow,
    OrdersReadModel,
    PaymentRow,
    PaymentsBacklog,
    PaymentsReadModel,
    Resources,
)
from payrelay.ports.reconciliation import ReconciliationStore
from payrelay.ports.tracing import NO_TRACING, Span, SpanName, Tracing
from payrelay.ports.transport import (
    BatchHandler,
    Delivery,
    OutboundMessage,
    PublishResult,
    Subscription,
    Transport,
)
from payrelay.ports.wakeups import WakeChannel, Wakeups

__all__ = [
    "NO_TRACING",
    "Backlog",
    "BatchHandler",
    "Checkout",
    "Checkouts",
    "ClaimedNotification",
    "Clock",
    "DeadLetter",
    "DeadLetterBox",
    "DeadLetters",
    "Delivery",
    "FailedTry",
    "Gateway",
    "Heartbeats",
    "HeldRefund",
    "Inbox",
    "InboxEntry",
    "MessagingTx",
    "MessagingUnitOfWork",
    "NotificationLog",
    "NotificationQueue",
    "NotificationRecord",
    "Notifications",
    "Operations",
    "OrderLine",
    "OrderRow",
    "OrderUpdate",
    "Orders",
    "OrdersReadModel",
    "OrdersTx",
    "OrdersUnitOfWork",
    "OutboundMessage",
    "Outbox",
    "OutboxRelayStore",
    "PaymentPage",
    "PaymentRow",
    "PaymentSave",
    "Payments",
    "PaymentsBacklog",
    "PaymentsClient",
    "PaymentsReadModel",
    "PaymentsTx",
    "PaymentsUnitOfWork",
    "PipelineStatus",
    "PublishResult",
    "ReconciliationStore",
    "RefundQueue",
    "RefundRequest",
    "Refunds",
    "Resources",
    "SeenMessage",
    "Span",
    "SpanName",
    "Subscription",
    "Timeline",
    "TimelineEntry",
    "Trace",
    "TraceStep",
    "Tracing",
    "Transport",
    "UnknownRefund",
    "WakeChannel",
    "Wakeups",
    "WorkQueue",
    "WorkerBeat",
]
