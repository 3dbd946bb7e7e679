"""Customers paying: each creates an order, gets its checkout and follows a seeded plan.

A customer is a client of the orders API and of the gateway's payment page (the
simulator's `/simulator/preferences/{id}/pay`). It retries what a person would retry (an
answer that did not come, a 5xx) for up to a minute: a killed API must delay customers,
not lose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import httpx

from payrelay.chaos.topology import Endpoints
from payrelay.domain.order import OrderStatus

GIVE_UP_SECONDS = 60.0

log = logging.getLogger(__name__)


class Step(StrEnum):
    APPROVE = "approve"
    """Pays; approved at once."""
    REJECT = "reject"
    """Pays; rejected at once."""
    PENDING_THEN_APPROVE = "pending_then_approve"
    """Pays; pending first, approved a moment later (two notifications)."""
    APPROVE_UNNOTIFIED = "approve_unnotified"
    """Pays, approved, and every webhook about it is lost: only the reconciler finds it."""
    LATER = "later"
    """Waits (`ChaosOptions.second_payment_after`, 20-40 s) before the next step."""
    CANCEL = "cancel"
    """Cancels the order (before paying it)."""
    EXPIRE = "expire"
    """Waits until the order has expired (before paying it)."""


Plan = tuple[Step, ...]
_S = Step
# What customers do, with weights: most pay once, the rest cover each way of getting it wrong.
PLANS: tuple[tuple[Plan, int], ...] = (
    ((_S.APPROVE,), 46),
    ((_S.APPROVE, _S.APPROVE), 6),  # pays twice at once: the second is refunded
    ((_S.APPROVE, _S.LATER, _S.APPROVE), 6),  # pays again 20-40 s later
    ((_S.APPROVE, _S.LATER, _S.APPROVE_UNNOTIFIED), 4),  # ... and that webhook is lost
    ((_S.REJECT, _S.APPROVE), 8),
    ((_S.PENDING_THEN_APPROVE,), 8),
    ((_S.APPROVE_UNNOTIFIED,), 4),
    ((_S.CANCEL, _S.APPROVE), 6),  # pays a cancelled order: refunded
    ((_S.EXPIRE, _S.APPROVE), 4),  # pays an expired order: refunded
    ((_S.REJECT,), 4),  # gives up: the order stays pending, then expires
)
PAYING = frozenset(Step) - {Step.LATER, Step.CANCEL, Step.EXPIRE}


def payments_in(plan: Plan) -> int:
    return sum(1 for step in plan if step in PAYING)


def draw_plans(payments: int, seed: int) -> list[Plan]:
    """Plans until they add up to `payments` payments (the last may go one or two over)."""
    rng = random.Random(f"{seed}:plans")
    plans: list[Plan] = []
    while sum(map(payments_in, plans)) < payments:
        plans.append(rng.choices([p for p, _ in PLANS], weights=[w for _, w in PLANS])[0])
    return plans


@dataclass
class Customer:
    index: int
    plan: Plan
    order_id: str | None = None
    payment_ids: list[str] = field(default_factory=list)
    gave_up: str | None = None
    """Why the customer stopped short of its plan (the API never answered...)."""


@dataclass(frozen=True, slots=True)
class Driving:
    endpoints: Endpoints
    seed: int
    rate: float
    second_payment_after: tuple[float, float]
    duration: float | None = None


async def drive(driving: Driving, plans: list[Plan]) -> list[Customer]:
    """Start one customer per plan at `rate` payments a second (until `duration`, if
    set); wait for all of them; the customers started."""
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    customers: list[Customer] = []
    tls = ssl.create_default_context()  # built once: every customer's client shares it
    due = started_at
    async with asyncio.TaskGroup() as tg:
        for index, plan in enumerate(plans):
            if driving.duration is not None and loop.time() - started_at > driving.duration:
                break  # the rest are never started
            customers.append(customer := Customer(index, plan))
            tg.create_task(_one_customer(tls, driving, customer))
            # Each start is due at its own time, so a busy loop does not slow the rate.
            due += max(payments_in(plan), 1) / driving.rate
            await asyncio.sleep(max(0.0, due - loop.time()))
    return customers


async def _one_customer(tls: ssl.SSLContext, driving: Driving, customer: Customer) -> None:
    """One customer on a connection pool of its own: httpcore 1.0.9 leaks a pool slot for
    good when a request waiting under contention is cancelled or times out (encode/httpcore
    #1093), and one pool shared by every customer was wedged that way within a minute of a
    run with every fault kind: no customer got an answer again."""
    rng = random.Random(f"{driving.seed}:customer:{customer.index}")
    try:
        async with (httpx.AsyncClient(timeout=10, verify=tls) as http,
                    asyncio.timeout(GIVE_UP_SECONDS * 3)):
            await _follow_plan(http, driving, customer, rng)
    except (TimeoutError, httpx.HTTPError, _GaveUp) as exc:
        customer.gave_up = f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:  # a customer's bug must not end the run: it is counted
        log.exception("chaos: customer %d failed unexpectedly", customer.index)
        customer.gave_up = f"unexpected {type(exc).__name__}: {exc}"[:200]


async def _follow_plan(
    http: httpx.AsyncClient, driving: Driving, customer: Customer, rng: random.Random
) -> None:
    e = driving.endpoints
    price = Decimal(10 + customer.index % 90) + Decimal("0.50")
    created = await _call(http, "POST", f"{e.orders_url}/orders", json={
        "items": [{"sku": f"SKU-{customer.index % 17}", "quantity": 2,
                   "unit_price": str(price)}],
        "total": str(price * 2), "currency": "BRL",
        "description": f"chaos order {customer.index}",
    })
    order_id = customer.order_id = str(created.json()["order_id"])
    checkout = await _call(http, "POST", f"{e.orders_url}/orders/{order_id}/checkout")
    preference_id = str(checkout.json()["preference_id"])
    for step in customer.plan:
        if step is Step.CANCEL:
            await _call(http, "POST", f"{e.orders_url}/orders/{order_id}/cancel")
        elif step is Step.EXPIRE:
            await _until_expired(http, f"{e.orders_url}/orders/{order_id}")
        elif step is Step.LATER:
            await asyncio.sleep(rng.uniform(*driving.second_payment_after))
        else:
            outcome = "approve" if step is Step.APPROVE_UNNOTIFIED else step.value
            paid = await _call(
                http, "POST", f"{e.simulator_url}/simulator/preferences/{preference_id}/pay",
                json={"outcome": outcome, "drop_notifications": step is Step.APPROVE_UNNOTIFIED},
            )
            customer.payment_ids.append(str(paid.json()["payment_id"]))


class _GaveUp(Exception):
    pass


async def _call(
    http: httpx.AsyncClient, method: str, url: str, json: object | None = None
) -> httpx.Response:
    """The answer to a request, retried while it fails as an outage would (no answer,
    5xx, 429); any other 4xx is the customer's own mistake and ends the plan."""
    deadline = asyncio.get_running_loop().time() + GIVE_UP_SECONDS
    pause = 0.1
    while True:
        # AttributeError: httpcore's anyio stream asked for the peer of a socket the server
        # had just closed (`'NoneType' object has no attribute 'getpeername'`), seen in a
        # run with every fault kind: for a customer, one more answer that did not come.
        with contextlib.suppress(httpx.TransportError, AttributeError):
            response = await http.request(method, url, json=json)
            if response.status_code < 400:
                return response
            if response.status_code < 500 and response.status_code != 429:
                raise _GaveUp(f"{method} {url}: {response.status_code} {response.text[:100]}")
        if asyncio.get_running_loop().time() > deadline:
            raise _GaveUp(f"{method} {url}: no answer for {GIVE_UP_SECONDS:.0f}s")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


async def _until_expired(http: httpx.AsyncClient, url: str) -> None:
    while (await _call(http, "GET", url)).json()["status"] != OrderStatus.EXPIRED:
        await asyncio.sleep(0.5)
