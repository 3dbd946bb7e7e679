"""GatewaySimulator driven in process; webhooks land in an httpx.MockTransport recorder."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from payrelay.domain.errors import NotificationRejected
from payrelay.domain.signature import verify_signature
from payrelay.simulator import (
    BadRequest,
    DeliveryPolicy,
    GatewaySimulator,
    LedgerEntry,
    NotFound,
    NotificationStyle,
    SimulatorFaults,
    Unauthorized,
)
from payrelay.simulator.faults import faults_from_json, faults_to_json
from payrelay.simulator.jsonio import dumps, iso, loads
from payrelay.simulator.search import query_from_params

SECRET = "unit-secret"
HOOK = "https://shop.test/webhooks/mp"


@dataclass
class Hooks:
    """Records every POST; answers each status in `answers` in turn, then 200."""

    answers: list[int] = field(default_factory=list)
    received: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        return httpx.Response(self.answers.pop(0) if self.answers else 200)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.received]

    def actions(self, payment_id: int) -> list[str]:
        return [b["action"] for b in self.bodies() if b["data"]["id"] == str(payment_id)]


class Clock:
    """A clock that moves one millisecond per reading, so every update is strictly later."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 14, 0, 0, 123000, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def make_simulator(
    hooks: Hooks, *, faults: SimulatorFaults | None = None, attempts: int = 4
) -> GatewaySimulator:
    return GatewaySimulator(
        access_token="unit-token",
        webhook_secret=SECRET,
        faults=faults,
        clock=Clock(),
        approve_delay=0.01,
        delivery=DeliveryPolicy(base_delay=0.001, max_delay=0.004, max_attempts=attempts),
        transport=httpx.MockTransport(hooks),
    )


def clocked_simulator(
    hooks: Hooks, clock: Clock, *, faults: SimulatorFaults | None = None
) -> GatewaySimulator:
    """A simulator on a clock the test moves by hand."""
    return GatewaySimulator(
        access_token="unit-token",
        webhook_secret=SECRET,
        faults=faults,
        clock=clock,
        delivery=DeliveryPolicy(base_delay=0.001, max_delay=0.004, max_attempts=4),
        transport=httpx.MockTransport(hooks),
    )


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
async def sim(hooks: Hooks) -> AsyncIterator[GatewaySimulator]:
    async with make_simulator(hooks) as simulator:
        yield simulator
        assert simulator.delivery_crashes == []


def order(
    sim: GatewaySimulator, order_id: str, *, unit_price: object = "10.50", qty: int = 2
) -> str:
    body = {
        "items": [
            {"title": "Mate", "quantity": qty, "unit_price": unit_price, "currency_id": "ARS"}
        ],
        "external_reference": order_id,
        "notification_url": HOOK,
    }
    preference_id: str = sim.create_preference(body)["id"]
    return preference_id


async def settled(sim: GatewaySimulator) -> None:
    async with asyncio.timeout(2):
        await sim.settle()


# -- ledger and payments -----------------------------------------------------------------


async def test_approved_payment_is_charged_in_the_ledger(sim: GatewaySimulator) -> None:
    payment_id = await sim.pay(order(sim, "order-1"), "approve")

    assert sim.ledger()["order-1"] == LedgerEntry(
        "ARS", Decimal("21.00"), Decimal(0), (payment_id,)
    )
    payment = sim.payment(payment_id)
    assert (payment["status"], payment["status_detail"]) == ("approved", "accredited")
    assert payment["date_approved"] == payment["date_last_updated"]


async def test_rejected_payment_charges_nothing(sim: GatewaySimulator) -> None:
    payment_id = await sim.pay(order(sim, "order-2"), "reject")

    entry = sim.ledger()["order-2"]
    assert (entry.charged, entry.payment_ids) == (Decimal(0), (payment_id,))
    assert sim.payment(payment_id)["status"] == "rejected"
    assert sim.payment(payment_id)["date_approved"] is None


async def test_paying_the_same_order_twice_charges_twice(sim: GatewaySimulator) -> None:
    preference_id = order(sim, "order-3")
    first = await sim.pay(preference_id, "approve")
    second = await sim.pay(preference_id, "approve")

    assert first != second
    assert sim.ledger_entry("order-3").charged == Decimal("42.00")
    assert sim.ledger_entry("order-3").payment_ids == (first, second)


async def test_amounts_stay_exact_decimals_end_to_end(sim: GatewaySimulator) -> None:
    body = loads(b'{"unit_price": 0.1}')
    payment_id = await sim.pay(
        order(sim, "order-4", unit_price=body["unit_price"], qty=3), "approve"
    )

    assert sim.payment(payment_id)["transaction_amount"] == Decimal("0.3")
    assert b'"transaction_amount":0.3,' in dumps(sim.payment(payment_id))


async def test_pending_then_approve_reaches_approved_and_notifies_twice(
    sim: GatewaySimulator, hooks: Hooks
) -> None:
    payment_id = await sim.pay(order(sim, "order-5"), "pending_then_approve")
    assert sim.payment(payment_id)["status"] == "pending"
    assert sim.ledger_entry("order-5").charged == Decimal(0)

    await settled(sim)

    assert sim.payment(payment_id)["status"] == "approved"
    assert sim.ledger_entry("order-5").charged == Decimal("21.00")
    assert hooks.actions(payment_id) == ["payment.created", "payment.updated"]


async def test_a_payment_whose_webhooks_are_lost_is_only_found_through_the_api(
    sim: GatewaySimulator, hooks: Hooks
) -> None:
    preference = order(sim, "order-lost")
    seen = await sim.pay(preference, "approve")
    lost = await sim.pay(preference, "approve", drop_notifications=True)
    await sim.set_status(lost, "charged_back")  # later changes are lost as well
    await settled(sim)

    assert hooks.actions(seen) == ["payment.created"]
    assert hooks.actions(lost) == []
    assert sim.stats.dropped == 2
    assert sim.payment(lost)["status"] == "charged_back"
    found = sim.search_payments(external_reference="order-lost")["results"]
    assert {p["id"] for p in found} == {seen, lost}


async def test_forced_chargeback_shows_in_the_ledger(sim: GatewaySimulator, hooks: Hooks) -> None:
    payment_id = await sim.pay(order(sim, "order-6"), "approve")
    await sim.set_status(payment_id, "charged_back")
    await settled(sim)

    entry = sim.ledger_entry("order-6")
    assert (entry.charged, entry.charged_back, entry.net) == (
        Decimal("21.00"),
        Decimal("21.00"),
        Decimal(0),
    )
    assert hooks.actions(payment_id) == ["payment.created", "payment.updated"]


async def test_search_pages_oldest_first(sim: GatewaySimulator) -> None:
    preference_id = order(sim, "order-7")
    ids = [await sim.pay(preference_id, "reject") for _ in range(3)]
    await sim.pay(order(sim, "order-8"), "approve")

    page = sim.search_payments(external_reference="order-7", limit=2, offset=1)

    assert page["paging"] == {"total": 3, "limit": 2, "offset": 1}
    assert [p["id"] for p in page["results"]] == ids[1:]
    assert sim.search_payments()["paging"]["total"] == 4
    with pytest.raises(BadRequest):
        sim.search_payments(offset=-1)


def ids_of(found: dict[str, Any]) -> list[int]:
    return [p["id"] for p in found["results"]]


async def test_search_by_last_update_sorts_either_way_and_pages(hooks: Hooks) -> None:
    clock = Clock()
    async with clocked_simulator(hooks, clock) as sim:
        preference_id = order(sim, "order-9")
        early = await sim.pay(preference_id, "pending")
        untouched = await sim.pay(preference_id, "reject")
        clock.now += timedelta(hours=1)
        since = clock.now
        late = await sim.pay(preference_id, "pending")
        await sim.set_status(early, "approved")  # updated last, created first

        def swept(**options: Any) -> dict[str, Any]:
            return sim.search_payments(
                range="date_last_updated", begin_date=since, sort="date_last_updated",
                **options,
            )

        assert ids_of(swept()) == [late, early]
        assert ids_of(swept(criteria="desc")) == [early, late]
        assert ids_of(swept(limit=1, offset=1)) == [early]
        assert swept(limit=1)["paging"] == {"total": 2, "limit": 1, "offset": 0}
        assert ids_of(sim.search_payments(sort="id", criteria="desc")) == [
            late, untouched, early
        ]
        before = since - timedelta(milliseconds=1)
        assert ids_of(sim.search_payments(range="date_last_updated", end_date=before)) == [
            untouched
        ]


async def test_search_bounds_are_inclusive_to_the_millisecond(hooks: Hooks) -> None:
    clock = Clock()
    async with clocked_simulator(hooks, clock) as sim:
        payment_id = await sim.pay(order(sim, "order-10"), "approve")
        stamp = sim.payment(payment_id)["date_last_updated"]

        found = sim.search_payments(range="date_last_updated", begin_date=stamp, end_date=stamp)

    assert ids_of(found) == [payment_id]


async def test_search_by_approval_date_leaves_out_the_unapproved(sim: GatewaySimulator) -> None:
    preference_id = order(sim, "order-11")
    await sim.pay(preference_id, "reject")
    approved = await sim.pay(preference_id, "approve")

    found = sim.search_payments(external_reference="order-11", range="date_approved")

    assert ids_of(found) == [approved]


async def test_search_dates_may_be_relative_to_now(hooks: Hooks) -> None:
    clock = Clock()
    async with clocked_simulator(hooks, clock) as sim:
        payment_id = await sim.pay(order(sim, "order-12"), "approve")
        clock.now += timedelta(days=2)
        assert ids_of(sim.search_payments(begin_date="NOW-3DAYS")) == [payment_id]
        assert ids_of(sim.search_payments(begin_date="NOW-1DAYS")) == []
        assert ids_of(sim.search_payments(end_date="NOW-1DAYS")) == [payment_id]
        clock.now += timedelta(days=95)  # past the default begin_date, NOW-3MONTHS
        assert ids_of(sim.search_payments()) == []
        assert ids_of(sim.search_payments(begin_date="NOW-4MONTHS")) == [payment_id]


@pytest.mark.parametrize(
    ("params", "cause"),
    [
        ({"limit": "1001"}, 1000),
        ({"limit": "many"}, 1),
        ({"offset": "-1"}, 1),
        ({"begin_date": "yesterday"}, 1001),
        ({"end_date": "NOW-2WEEKS"}, 1001),
        ({"sort": "amount"}, 1003),
        ({"criteria": "up"}, 1004),
        ({"range": "money_release_date"}, 1),
    ],
)
async def test_search_refuses_what_mercadopago_refuses(
    sim: GatewaySimulator, params: dict[str, str], cause: int
) -> None:
    with pytest.raises(BadRequest) as refused:
        sim.search(query_from_params(params))
    assert refused.value.body()["cause"][0]["code"] == cause


async def test_a_new_payment_stays_invisible_for_the_visibility_delay(hooks: Hooks) -> None:
    clock = Clock()
    async with clocked_simulator(
        hooks, clock, faults=SimulatorFaults(visibility_delay=5.0)
    ) as sim:
        payment_id = await sim.pay(order(sim, "order-13"), "approve")
        await settled(sim)
        assert hooks.actions(payment_id) == ["payment.created"]  # notified all the same
        with pytest.raises(NotFound):
            sim.payment(payment_id)
        with pytest.raises(NotFound):
            await sim.refund(payment_id)
        assert sim.search_payments(external_reference="order-13")["paging"]["total"] == 0
        assert sim.ledger_entry("order-13").charged == Decimal("21.00")  # it did happen

        clock.now += timedelta(seconds=5)

        assert sim.payment(payment_id)["status"] == "approved"
        assert ids_of(sim.search_payments(external_reference="order-13")) == [payment_id]


def test_visibility_delay_is_a_fault_switch_like_the_others() -> None:
    assert faults_from_json({"visibility_delay": 2}).visibility_delay == 2.0
    assert faults_to_json(SimulatorFaults(visibility_delay=1.5))["visibility_delay"] == 1.5
    with pytest.raises(ValueError, match="visibility_delay"):
        SimulatorFaults(visibility_delay=-1)


async def test_unknown_ids_are_not_found(sim: GatewaySimulator) -> None:
    with pytest.raises(NotFound):
        sim.payment(999)
    with pytest.raises(NotFound):
        sim.payment("not-a-number")
    with pytest.raises(NotFound):
        await sim.pay("no-such-preference", "approve")


def test_preference_idempotency_key_returns_the_same_preference(hooks: Hooks) -> None:
    sim = make_simulator(hooks)
    body = {"items": [{"title": "A", "quantity": 1, "unit_price": 5, "currency_id": "BRL"}]}

    first = sim.create_preference(body, idempotency_key="k1")
    again = sim.create_preference(body, idempotency_key="k1")
    other = sim.create_preference(body, idempotency_key="k2")

    assert first == again
    assert other["id"] != first["id"]
    assert first["id"].startswith("123456-")


@pytest.mark.parametrize(
    "item",
    [
        {"title": "A", "quantity": 1, "unit_price": 1.5, "currency_id": "ARS"},  # a float
        {"title": "A", "quantity": 1, "unit_price": "1.005", "currency_id": "ARS"},
        {"title": "A", "quantity": 0, "unit_price": "1", "currency_id": "ARS"},
        {"title": "A", "quantity": 1, "unit_price": "-1", "currency_id": "ARS"},
        {"title": "A", "quantity": 1, "unit_price": "1", "currency_id": "pesos"},
    ],
)
def test_bad_items_are_refused(hooks: Hooks, item: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        make_simulator(hooks).create_preference({"items": [item]})


def test_authorize_wants_the_bearer_token(hooks: Hooks) -> None:
    sim = make_simulator(hooks)
    sim.authorize("Bearer unit-token")
    for header in (None, "", "Bearer wrong", "unit-token", "Basic unit-token"):
        with pytest.raises(Unauthorized):
            sim.authorize(header)


def test_timestamps_carry_milliseconds_and_offset() -> None:
    minus_four = timezone(timedelta(hours=-4))
    assert iso(datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=minus_four)) == (
        "2026-11-23T10:00:00.123-04:00"
    )
    with pytest.raises(ValueError, match="timezone"):
        iso(datetime(2026, 11, 23))  # noqa: DTZ001


# -- refunds ---------------------------------------------------------------------------------


async def test_full_refund_marks_payment_refunded_and_notifies(
    sim: GatewaySimulator, hooks: Hooks
) -> None:
    payment_id = await sim.pay(order(sim, "order-10"), "approve")
    refund = await sim.refund(payment_id, idempotency_key="r1")
    await settled(sim)

    payment = sim.payment(payment_id)
    assert (payment["status"], payment["status_detail"]) == ("refunded", "refunded")
    assert payment["transaction_amount_refunded"] == Decimal("21.00")
    assert (refund["amount"], refund["status"], refund["payment_id"]) == (
        Decimal("21.00"),
        "approved",
        payment_id,
    )
    assert sim.ledger_entry("order-10").refunded == Decimal("21.00")
    assert hooks.actions(payment_id) == ["payment.created", "payment.updated"]


async def test_same_refund_key_refunds_once(sim: GatewaySimulator) -> None:
    payment_id = await sim.pay(order(sim, "order-11"), "approve")

    first = await sim.refund(payment_id, amount=Decimal("5.25"), idempotency_key="r1")
    again = await sim.refund(payment_id, amount=Decimal("5.25"), idempotency_key="r1")

    assert first == again
    assert sim.ledger_entry("order-11").refunded == Decimal("5.25")
    assert sim.payment(payment_id)["status"] == "approved"  # partially refunded


async def test_second_full_refund_with_another_key_is_refused(sim: GatewaySimulator) -> None:
    payment_id = await sim.pay(order(sim, "order-12"), "approve")
    await sim.refund(payment_id, idempotency_key="r1")

    with pytest.raises(BadRequest) as refused:
        await sim.refund(payment_id, idempotency_key="r2")

    assert refused.value.body()["status"] == 400
    assert sim.ledger_entry("order-12").refunded == Decimal("21.00")


async def test_refund_cannot_exceed_what_is_left(sim: GatewaySimulator) -> None:
    payment_id = await sim.pay(order(sim, "order-13"), "approve")
    await sim.refund(payment_id, amount=Decimal("20.00"))

    with pytest.raises(BadRequest):
        await sim.refund(payment_id, amount=Decimal("1.01"))
    await sim.refund(payment_id, amount=Decimal("1.00"))

    assert sim.payment(payment_id)["status"] == "refunded"


async def test_unapproved_payment_cannot_be_refunded(sim: GatewaySimulator) -> None:
    payment_id = await sim.pay(order(sim, "order-14"), "reject")
    with pytest.raises(BadRequest):
        await sim.refund(payment_id)


# -- notifications ---------------------------------------------------------------------------


async def test_notification_is_signed_and_shaped_like_mercadopago(
    sim: GatewaySimulator, hooks: Hooks
) -> None:
    payment_id = await sim.pay(order(sim, "order-20"), "approve")
    await settled(sim)

    [request] = hooks.received
    query = parse_qs(urlsplit(str(request.url)).query)
    assert query == {"data.id": [str(payment_id)], "type": ["payment"]}
    body = json.loads(request.content)
    assert body["data"] == {"id": str(payment_id)}
    assert (body["type"], body["action"], body["live_mode"], body["api_version"]) == (
        "payment",
        "payment.created",
        False,
        "v1",
    )
    assert request.headers["content-type"] == "application/json"
    assert uuid.UUID(request.headers["x-request-id"]).version == 4
    verify_signature(
        request.headers["x-signature"],
        data_id=query["data.id"][0],
        request_id=request.headers["x-request-id"],
        secrets=[SECRET],
    )


async def test_ipn_style_names_the_payment_in_the_query_and_signs_nothing(hooks: Hooks) -> None:
    hooks.answers = [500]
    delivery = DeliveryPolicy(base_delay=0.001, style=NotificationStyle.IPN)
    async with GatewaySimulator(
        access_token="unit-token", webhook_secret=SECRET, clock=Clock(), delivery=delivery,
        transport=httpx.MockTransport(hooks),
    ) as sim:
        payment_id = await sim.pay(order(sim, "order-ipn"), "approve")
        await settled(sim)

    assert len(hooks.received) == 2  # the failed try, then its retry: the same IPN
    for request in hooks.received:
        assert request.method == "POST"
        query = parse_qs(urlsplit(str(request.url)).query)
        assert query == {"topic": ["payment"], "id": [str(payment_id)]}
        assert request.content == b""
        assert "x-signature" not in request.headers
        assert "x-request-id" not in request.headers


async def test_retries_resend_the_same_notification_until_accepted(hooks: Hooks) -> None:
    hooks.answers = [500, 503]
    async with make_simulator(hooks) as sim:
        await sim.pay(order(sim, "order-21"), "approve")
        await settled(sim)
        stats = sim.stats

    assert len({b["id"] for b in hooks.bodies()}) == 1
    assert len(hooks.received) == 3
    assert len({r.headers["x-request-id"] for r in hooks.received}) == 1
    assert (stats.sent, stats.delivered, stats.failed_attempts, stats.failed) == (3, 1, 2, 0)


async def test_delivery_gives_up_after_the_last_attempt(hooks: Hooks) -> None:
    hooks.answers = [500] * 10
    async with make_simulator(hooks, attempts=3) as sim:
        await sim.pay(order(sim, "order-22"), "approve")
        await settled(sim)
        stats = sim.stats

    assert (stats.sent, stats.failed_attempts, stats.failed, stats.delivered) == (3, 3, 1, 0)


async def test_rotated_secret_signs_later_notifications(
    sim: GatewaySimulator, hooks: Hooks
) -> None:
    sim.rotate_secret("new-secret")
    await sim.pay(order(sim, "order-23"), "approve")
    await settled(sim)

    [request] = hooks.received
    data_id = json.loads(request.content)["data"]["id"]
    request_id = request.headers["x-request-id"]
    verify_signature(
        request.headers["x-signature"],
        data_id=data_id,
        request_id=request_id,
        secrets=["new-secret"],
    )
    with pytest.raises(NotificationRejected):
        verify_signature(
            request.headers["x-signature"],
            data_id=data_id,
            request_id=request_id,
            secrets=[SECRET],
        )


async def test_notifications_made_before_start_are_sent_on_start(hooks: Hooks) -> None:
    sim = make_simulator(hooks)
    await sim.pay(order(sim, "order-24"), "approve")
    assert hooks.received == []

    async with sim:
        await settled(sim)

    assert len(hooks.received) == 1


# -- fault switches ----------------------------------------------------------------------------


async def test_drop_payment_ids_drops_every_notification_for_them(hooks: Hooks) -> None:
    async with make_simulator(hooks) as sim:
        preference_id = order(sim, "order-30")
        lost = await sim.pay(preference_id, "pending")
        kept = await sim.pay(preference_id, "approve")
        sim.set_faults(SimulatorFaults(drop_payment_ids=frozenset({str(lost)})))
        await sim.set_status(lost, "approved")
        await settled(sim)
        stats = sim.stats

    assert hooks.actions(lost) == ["payment.created"]  # only the one sent before the switch
    assert hooks.actions(kept) == ["payment.created"]
    assert stats.dropped == 1
    assert sim.payment(lost)["status"] == "approved"  # the gateway knows; the webhook is lost


async def run_faulty_scenario(faults: SimulatorFaults) -> tuple[list[int], dict[str, int]]:
    hooks = Hooks()
    async with make_simulator(hooks, faults=faults) as sim:
        preference_id = order(sim, "order-40")
        for _ in range(20):
            await sim.pay(preference_id, "approve")
        api = [sim.roll_api_fault().error_status or 0 for _ in range(20)]
        await settled(sim)
        stats = sim.stats.as_json()
    per_payment = sorted(int(b["data"]["id"]) for b in hooks.bodies())
    return per_payment + api, stats


async def test_fault_switches_with_a_seed_are_reproducible() -> None:
    faults = SimulatorFaults(
        seed=7, duplicate_rate=0.5, drop_rate=0.3, delay_max=0.005, api_error_rate=0.5
    )

    first, first_stats = await run_faulty_scenario(faults)
    second, second_stats = await run_faulty_scenario(faults)
    other, _ = await run_faulty_scenario(SimulatorFaults(**{**faults_kwargs(faults), "seed": 8}))

    assert (first, first_stats) == (second, second_stats)
    assert first != other
    assert first_stats["dropped"] > 0
    assert first_stats["duplicated"] > 0
    assert first_stats["api_errors"] > 0


def faults_kwargs(faults: SimulatorFaults) -> dict[str, Any]:
    return {name: getattr(faults, name) for name in faults.__dataclass_fields__}


async def test_reorder_can_deliver_an_update_before_its_creation() -> None:
    def updated_first(hooks: Hooks, payment_id: int) -> bool:
        return hooks.actions(payment_id) == ["payment.updated", "payment.created"]

    outcomes = []
    for seed in range(6):
        hooks = Hooks()
        faults = SimulatorFaults(seed=seed, reorder=True, reorder_window=0.005)
        async with make_simulator(hooks, faults=faults) as sim:
            payment_id = await sim.pay(order(sim, "order-50"), "pending")
            await sim.set_status(payment_id, "approved")
            await settled(sim)
        assert sorted(hooks.actions(payment_id)) == ["payment.created", "payment.updated"]
        outcomes.append(updated_first(hooks, payment_id))

    assert any(outcomes)
    assert not all(outcomes)


async def test_drop_all_sends_nothing(hooks: Hooks) -> None:
    async with make_simulator(hooks, faults=SimulatorFaults(drop_all=True)) as sim:
        await sim.pay(order(sim, "order-60"), "approve")
        await settled(sim)
        assert (sim.stats.notifications, sim.stats.dropped) == (1, 1)
    assert hooks.received == []


def test_faults_refuse_impossible_rates() -> None:
    with pytest.raises(ValueError, match="drop_rate"):
        SimulatorFaults(drop_rate=1.5)


async def test_stop_abandons_what_is_still_pending(hooks: Hooks) -> None:
    sim = make_simulator(hooks, faults=SimulatorFaults(delay_max=5.0))
    async with sim:
        await sim.pay(order(sim, "order-70"), "approve")
    assert (sim.stats.abandoned, sim.stats.delivered) == (1, 0)
