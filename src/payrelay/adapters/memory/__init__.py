"""In-memory adapters for every storage port: the fakes services are tested over.

They keep the SQL adapters' rules (dedupe, version checks, one refund per payment, an
older outcome never overwriting a newer, leases and retries) and real transactions: a
`begin()` block commits on a clean exit and leaves nothing behind on an exception. The
storage contract suite (tests/contract) runs the same assertions against these and SQL.

Only the standard library, the domain and the ports are imported here.
"""

from payrelay.adapters.memory.dead_letters import MemoryDeadLetterBox
from payrelay.adapters.memory.messaging import MemoryOutboxRelayStore
from payrelay.adapters.memory.orders import (
    MemoryOrdersUnitOfWork,
    OrdersDatabase,
    OrdersState,
    orders_database,
)
from payrelay.adapters.memory.payments import (
    MemoryNotificationLog,
    MemoryPaymentsUnitOfWork,
    PaymentsDatabase,
    PaymentsState,
    payments_database,
)
from payrelay.adapters.memory.queues import MemoryNotificationQueue, MemoryRefundQueue
from payrelay.adapters.memory.reconciliation import MemoryReconciliationStore
from payrelay.adapters.memory.store import MemoryDatabase

__all__ = [
    "MemoryDatabase",
    "MemoryDeadLetterBox",
    "MemoryNotificationLog",
    "MemoryNotificationQueue",
    "MemoryOrdersUnitOfWork",
    "MemoryOutboxRelayStore",
    "MemoryPaymentsUnitOfWork",
    "MemoryReconciliationStore",
    "MemoryRefundQueue",
    "OrdersDatabase",
    "OrdersState",
    "PaymentsDatabase",
    "PaymentsState",
    "orders_database",
    "payments_database",
]
