"""The demo's simulated customers: each creates an order, gets its checkout and follows its
plan (pay, pay again, cancel first, wait for expiry or for the reconciler...)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
from rich.console import Console
from rich.progress import Progress

from payrelay.domain.order import OrderStatus
from payrelay.entrypoints.embedded import EmbeddedStack

Plan = tuple[str, ...]
"""What one customer does, step by step: "approve", "reject", "pending_then_approve",
"approve_unnotified" (its webhooks lost), "cancel" and "expire" (the order is cancelled or
expires before the next step), "reconciled" (waits until the reconciler searched it)."""


async def run_customers(stack: EmbeddedStack, plans: list[Plan], console: Console) -> None:
    """One simulated customer per plan, at most 32 at a time, with a progress bar."""
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=30) as http:
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task("customers paying", total=len(plans))

            async def customer(index: int, plan: tuple[str, ...]) -> None:
                async with limit:
                    await _one_customer(http, stack, index, plan)
                progress.advance(task)

            await asyncio.gather(*(customer(i, plan) for i, plan in enumerate(plans)))


async def _one_customer(
    http: httpx.AsyncClient, stack: EmbeddedStack, index: int, plan: tuple[str, ...]
) -> None:
    price = Decimal(10 + index % 90) + Decimal("0.50")
    created = await http.post(
        f"{stack.orders_url}/orders",
        json={
            "items": [{"sku": f"SKU-{index % 17}", "quantity": 2, "unit_price": str(price)}],
            "total": str(price * 2),
            "currency": "BRL",
            "description": f"demo order {index}",
        },
    )
    created.raise_for_status()
    order_id = created.json()["order_id"]
    checkout = await _retrying(http, f"{stack.orders_url}/orders/{order_id}/checkout")
    preference_id = checkout["preference_id"]
    for step in plan:
        if step == "cancel":
            (await http.post(f"{stack.orders_url}/orders/{order_id}/cancel")).raise_for_status()
        elif step == "expire":
            await _until_expired(http, f"{stack.orders_url}/orders/{order_id}")
        elif step == "reconciled":
            await _until_reconciled(stack, order_id)
        else:
            pay_url = f"{stack.simulator_url}/simulator/preferences/{preference_id}/pay"
            outcome = step.removesuffix("_unnotified")
            body = {"outcome": outcome, "drop_notifications": step != outcome}
            (await http.post(pay_url, json=body)).raise_for_status()


async def _until_expired(http: httpx.AsyncClient, url: str) -> None:
    async with asyncio.timeout(60):
        while (await http.get(url)).json()["status"] != OrderStatus.EXPIRED:
            await asyncio.sleep(0.2)


async def _until_reconciled(stack: EmbeddedStack, order_id: str) -> None:
    """Until the reconciler has searched the gateway for this order's checkout."""
    async with asyncio.timeout(60):
        while not await stack.system.payments.reads.checkout_reconciled(order_id):
            await asyncio.sleep(0.2)


async def _retrying(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """A customer clicking "pay" again after the gateway hiccuped (checkout is idempotent)."""
    for attempt in range(10):
        response = await http.post(url)
        if response.status_code != 502:
            response.raise_for_status()
            result: dict[str, str] = response.json()
            return result
        await asyncio.sleep(0.05 * (attempt + 1))
    response.raise_for_status()
    raise RuntimeError("unreachable")
