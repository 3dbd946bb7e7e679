"""The naive pattern, side by side with payrelay in `make bench` (issue 10, item 2).

The webhook handler does the whole business transaction inside the gateway's request: it
fetches the payment, calls the order service over RabbitMQ RPC and answers only when the
order service has (NestJS `ClientRMQ` and `ServerRMQ` at their defaults: direct reply-to,
no-ack, prefetch 0). The gateway retries what did not get a 2xx. Measured under the same
loads as payrelay, against a healthy order service, a slow one (200 ms per UPDATE, the same
trigger as payrelay's slow order scenario) and one killed for 30 s: webhook answer
p50/p99, orders left pending, orders updated twice.

- `rpc.py`: the request-reply client, as `ClientRMQ`;
- `webhook_server.py`: the naive handler, a process of its own;
- `order_service.py`: the naive order service, a process of its own;
- `sender.py`: the gateway, at a fixed rate, retrying (a process of its own);
- `stack.py`: all of it deployed for one scenario; `suite.py`: the scenarios.

Nothing is imported here, so the processes it starts load only the modules they use.
"""
