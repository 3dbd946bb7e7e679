"""Request-reply over RabbitMQ the way NestJS's `ClientRMQ` does it out of the box.

What `ClientRMQ.send(pattern, data)` does with default options (nestjs/nest,
packages/microservices/client/client-rmq.ts): the request goes to a durable work queue
(amqplib's `assertQueue` default) as a non-persistent message (`persistent: false`) whose
`reply_to` is RabbitMQ's direct reply-to pseudo-queue `amq.rabbitmq.reply-to`, consumed
with no acknowledgement on the same channel, and is matched to its answer by
`correlation_id`. The body is Nest's packet `{"pattern", "data", "id"}`, the answer
`{"err", "response", "isDisposed"}`.

`send` has no timeout of its own in Nest; an application adds RxJS's `timeout()` pipe, and
this one uses `timeout` seconds (5 in the full bench) like a typical such pipe. An answer
that arrives after it is dropped, as Nest drops it once the caller has unsubscribed: the
order service has done the work all the same, which is how the naive pattern comes to
update an order twice when the gateway retries.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPException

__all__ = ["DIRECT_REPLY_TO", "UPDATE_ORDER", "OrderRpc", "RpcFailed"]

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
UPDATE_ORDER = "update_order_payment_status"  # the one message pattern of the order service


class RpcFailed(Exception):
    """No answer within the timeout, or the order service answered with an error."""


@dataclass
class OrderRpc:
    """One connection and channel, shared by every request of the process, as Nest's."""

    connection: AbstractConnection
    channel: AbstractChannel
    queue: str
    timeout: float
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    async def connect(cls, url: str, queue: str, *, timeout: float) -> OrderRpc:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        rpc = cls(connection, channel, queue, timeout)
        # Direct reply-to is consumed, never declared, and only on the publishing channel.
        replies = aio_pika.Queue(channel, DIRECT_REPLY_TO, durable=False, exclusive=False,
                                 auto_delete=False, arguments=None)
        await replies.consume(rpc._answered, no_ack=True)
        return rpc

    async def call(self, pattern: str, data: dict[str, Any]) -> Any:
        """The order service's response to `pattern`, or RpcFailed."""
        correlation_id = uuid.uuid4().hex
        answer = asyncio.get_running_loop().create_future()
        self.waiting[correlation_id] = answer
        body = json.dumps({"pattern": pattern, "data": data, "id": correlation_id})
        try:
            await self.channel.default_exchange.publish(
                aio_pika.Message(body.encode(), reply_to=DIRECT_REPLY_TO,
                                 correlation_id=correlation_id,
                                 delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT),
                routing_key=self.queue)
            reply = await asyncio.wait_for(answer, self.timeout)
        except TimeoutError as exc:
            raise RpcFailed(f"{pattern}: no answer within {self.timeout:g}s") from exc
        except (AMQPException, ConnectionError) as exc:
            raise RpcFailed(f"{pattern}: not sent ({type(exc).__name__})") from exc
        finally:
            self.waiting.pop(correlation_id, None)
        if reply.get("err"):
            raise RpcFailed(f"{pattern}: {reply['err']}")
        return reply.get("response")

    async def _answered(self, message: AbstractIncomingMessage) -> None:
        answer = self.waiting.get(message.correlation_id or "")
        if answer is not None and not answer.done():
            answer.set_result(json.loads(message.body))

    async def close(self) -> None:
        await self.connection.close()
