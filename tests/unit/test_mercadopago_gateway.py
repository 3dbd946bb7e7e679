"""The MercadoPago adapter against the simulator's app: paging, sweeping, error translation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from payrelay.domain.errors import GatewayRejected, GatewayUnavailable
from payrelay.domain.money import Money
from payrelay.domain.payment import PaymentStatus
from payrelay.simulator import SimulatorFaults
from tests.simulated_gateway import SimulatedGateway, simulated_gateway


@pytest.fixture
async def mp() -> AsyncIterator[SimulatedGateway]:
    async with simulated_gateway(search_page_size=7) as harness:
        yield harness


async def pay_many(mp: SimulatedGateway, preference_id: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        ids.append(str(await mp.simulator.pay(preference_id, "reject")))
        mp.clock.advance(milliseconds=1)
    return ids


async def test_order_search_reads_every_page(mp: SimulatedGateway) -> None:
    preference_id = mp.checkout("order-1")
    rejected = await pay_many(mp, preference_id, 31)
    approved = str(await mp.simulator.pay(preference_id, "approve"))
    await pay_many(mp, mp.checkout("order-2"), 3)  # another order's payments

    found = await mp.gateway.search_payments("order-1")

    assert [p.payment_id for p in found] == [*rejected, approved]
    assert found[-1].status is PaymentStatus.APPROVED
    assert len(mp.wire.requests) == 5  # 32 payments, 7 a page
    offsets = [int(r.url.params["offset"]) for r in mp.wire.requests]
    assert offsets == [0, 7, 14, 21, 28]


async def test_order_search_beyond_mercadopagos_default_page_of_30() -> None:
    async with simulated_gateway() as mp:  # the adapter's own page size
        preference_id = mp.checkout("order-3")
        await pay_many(mp, preference_id, 31)
        approved = str(await mp.simulator.pay(preference_id, "approve"))

        found = await mp.gateway.search_payments("order-3")

    assert len(found) == 32 and found[-1].payment_id == approved


async def test_sweep_pages_by_last_update_oldest_first(mp: SimulatedGateway) -> None:
    preference_id = mp.checkout("order-4")
    first, second, third = await pay_many(mp, preference_id, 3)
    since = mp.clock.now
    mp.clock.advance(seconds=1)
    fresh = str(await mp.simulator.pay(preference_id, "pending"))
    mp.clock.advance(seconds=1)
    await mp.simulator.set_status(first, "cancelled")  # its update is now the latest
    until = mp.clock.now

    pages = [
        await mp.gateway.sweep_payments(
            updated_from=since, updated_to=until, offset=offset, limit=1
        )
        for offset in (0, 1, 2)
    ]

    assert [[p.payment_id for p in page.payments] for page in pages] == [[fresh], [first], []]
    assert [(page.total, page.offset) for page in pages] == [(2, 0), (2, 1), (2, 2)]
    params = mp.wire.requests[0].url.params
    assert (params["range"], params["sort"], params["criteria"]) == (
        "date_last_updated", "date_last_updated", "asc"
    )
    assert params["begin_date"].endswith("+00:00") and "." in params["begin_date"]
    earlier = await mp.gateway.sweep_payments(
        updated_from=since - timedelta(hours=1), updated_to=since, offset=0, limit=10
    )
    assert [p.payment_id for p in earlier.payments] == [second, third]


async def test_search_failures_are_translated(mp: SimulatedGateway) -> None:
    mp.checkout("order-5")
    mp.wire.cut = {1}
    with pytest.raises(GatewayUnavailable):
        await mp.gateway.search_payments("order-5")
    mp.simulator.set_faults(SimulatorFaults(api_error_rate=1.0))
    with pytest.raises(GatewayUnavailable):
        await mp.gateway.search_payments("order-5")
    mp.simulator.set_faults(SimulatorFaults())
    with pytest.raises(GatewayRejected) as refused:
        await mp.gateway.sweep_payments(
            updated_from=mp.clock.now, updated_to=mp.clock.now, offset=0, limit=5000
        )
    assert refused.value.status_code == 400


@pytest.mark.parametrize(
    ("payment_id", "path"),
    [
        ("../../checkout/preferences/x", "/v1/payments/..%2F..%2Fcheckout%2Fpreferences%2Fx"),
        ("1?status=approved", "/v1/payments/1%3Fstatus%3Dapproved"),
        ("1#x", "/v1/payments/1%23x"),
    ],
)
async def test_an_id_is_one_quoted_path_segment(
    mp: SimulatedGateway, payment_id: str, path: str
) -> None:
    with pytest.raises(GatewayRejected) as info:
        await mp.gateway.fetch_payment(payment_id)
    assert info.value.status_code == 404
    assert mp.wire.requests[-1].url.raw_path.decode() == path
    with pytest.raises(GatewayRejected):
        await mp.gateway.refund(payment_id, amount=Money.parse("1.00", "BRL"),
                                idempotency_key="k")
    assert mp.wire.requests[-1].url.raw_path.decode() == path + "/refunds"


@pytest.mark.parametrize("payment_id", ["", ".", ".."])
async def test_a_dot_segment_is_never_sent(mp: SimulatedGateway, payment_id: str) -> None:
    with pytest.raises(GatewayRejected):
        await mp.gateway.fetch_payment(payment_id)
    assert mp.wire.requests == []
