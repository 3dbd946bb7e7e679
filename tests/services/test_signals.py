"""What the services tell: business events as INFO lines with their ids, and the metrics port
called with domain words (a recording fake of `ports.metrics.Metrics`)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from payrelay.domain.events import EventType, RejectionReason
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery
from payrelay.ports.metrics import NoMetrics, OutboxLagReader
from payrelay.services.consume import OrderOutcomeConsumer
from payrelay.services.dead_letter_sink import DeadLetterSink
from tests.contract.builders import envelope
from tests.services.conftest import World
from tests.services.test_consumers import delivery


class RecordingMetrics(NoMetrics):
    """Remembers every call, as (method, keyword arguments)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def __getattribute__(self, name: str) -> object:
        if name.startswith("_") or name in ("calls", "watch_outbox", "scrape"):
            return super().__getattribute__(name)
        calls = super().__getattribute__("calls")
        return lambda **kwargs: calls.append((name, kwargs))

    def watch_outbox(self, name: str, read: OutboxLagReader) -> None:
        pass


def events(caplog: pytest.LogCaptureFixture, startswith: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "payrelay.events" and r.getMessage().startswith(startswith)]


def ids(record: logging.LogRecord) -> tuple[object, object, object]:
    return (getattr(record, "order_id", "-"), getattr(record, "payment_id", "-"),
            getattr(record, "correlation_id", "-"))


async def test_an_order_paid_is_an_info_line_and_its_wait_since_approval_is_observed(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    await world.add_order()
    approval = envelope("1", at=world.clock())
    caplog.set_level(logging.INFO, logger="payrelay.events")
    await world.order_consumer.handle([delivery(approval)])
    (paid,) = events(caplog, "order paid")
    assert paid.levelno == logging.INFO
    assert ids(paid) == ("order-1", "1", "mercadopago:1")
    metrics = RecordingMetrics()
    consumer = OrderOutcomeConsumer(uow=world.payments, clock=world.clock, faults=world.faults,
                                    metrics=metrics)
    world.clock.advance(seconds=2.5)
    answer = replace(approval, type=EventType.ORDER_PAYMENT_APPLIED, order_version=2)
    await consumer.handle([delivery(answer)])
    assert ("order_paid", {"seconds_since_approval": 2.5}) in metrics.calls
    assert ("consumed", {"consumer": "payments.order-events", "outcome": "applied",
                         "count": 1}) in metrics.calls


async def test_a_rejection_and_a_held_refund_are_info_lines_with_their_ids(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="payrelay.events")
    await world.add_order()
    await world.order_consumer.handle([delivery(envelope("1"))])
    await world.order_consumer.handle([delivery(envelope("2"))])
    (rejected,) = events(caplog, "payment rejected")
    assert rejected.reason == "already_paid"  # type: ignore[attr-defined]
    assert ids(rejected) == ("order-1", "2", "mercadopago:2")
    metrics = RecordingMetrics()
    consumer = OrderOutcomeConsumer(uow=world.payments, clock=world.clock, faults=world.faults,
                                    metrics=metrics)
    unknown = envelope("3", order_id="order-9", type=EventType.ORDER_PAYMENT_REJECTED,
                       reason=RejectionReason.UNKNOWN_ORDER)
    await consumer.handle([delivery(unknown)])
    (held,) = events(caplog, "refund held")
    assert ids(held) == ("order-9", "3", "mercadopago:3")
    assert ("refund_finished", {"result": "held"}) in metrics.calls


async def test_a_reconciler_repair_is_one_info_line_per_payment(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    payment_id = await world.pay()  # its webhook is lost
    caplog.set_level(logging.INFO, logger="payrelay.services.reconcile")
    await world.reconciler().run_once()
    (line,) = [r for r in caplog.records if "repaired" in r.getMessage()]
    assert line.levelno == logging.INFO and line.check == "lost_payments_found"  # type: ignore[attr-defined]
    assert ids(line)[1:] == (payment_id, f"mercadopago:{payment_id}")


async def test_a_dead_letter_is_an_info_line_and_counted(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="payrelay.events")
    metrics = RecordingMetrics()
    sink = DeadLetterSink(uow=world.orders, subscription=ORDER_SIDE_SUBSCRIPTION,
                          clock=world.clock, metrics=metrics)
    message = envelope("4")
    await sink.handle([Delivery(message_id=str(message.message_id), routing_key="payment.approved",
                                body=message.to_json(),
                                headers={"x-payrelay-reason": "retries exhausted"})])
    (line,) = events(caplog, "dead letter created")
    assert ids(line) == ("order-1", "4", "mercadopago:4")
    assert line.reason == "retries exhausted"  # type: ignore[attr-defined]
    assert metrics.calls == [("dead_lettered", {"subscription": "orders.payment-events",
                                                "count": 1})]
    await world.order_consumer.handle([Delivery(message_id="m-1", routing_key="payment.approved",
                                                body=b"{not json")])
    assert len(events(caplog, "dead letter created")) == 2  # the undecodable one too
