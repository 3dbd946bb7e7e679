"""Settings, read once by an entrypoint from `PAYRELAY_*` environment variables."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from payrelay.domain.refund import MismatchPolicy
from payrelay.domain.retry import Backoff, RetryPolicy, RetrySchedule
from payrelay.masks import mask_url
from payrelay.services.reconcile import ReconcilePolicy


class OrderSide(StrEnum):
    """Who consumes payment events and answers with outcomes."""

    PAYRELAY = "payrelay"
    """payrelay's own order side (the orders roles), with payrelay's envelopes."""
    NESTJS = "nestjs"
    """A NestJS service on `Transport.RMQ`: NestJS packets both ways (docs/integration.md)."""


class Settings(BaseSettings):
    """Every knob payrelay has; the README documents each with its default."""

    model_config = SettingsConfigDict(
        env_prefix="PAYRELAY_", extra="forbid", toml_file="payrelay.toml",
        hide_input_in_errors=True,  # a settings error must not print a secret it was given
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then PAYRELAY_* variables, then ./payrelay.toml, then defaults."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    payments_database_url: str = "sqlite+aiosqlite:///var/payments.db"
    orders_database_url: str | None = "sqlite+aiosqlite:///var/orders.db"
    """Empty (or unset to ""): this deployment has no orders database, because the shop runs
    its own order service; only payments-side roles run, and nothing opens or migrates one.
    Processes that run only payments-side roles never open it, whatever it says."""
    broker_url: SecretStr = SecretStr("local")
    """"local" for the in-process transport, or an amqp:// URL."""
    broker_name_prefix: str = ""
    """Prefix for every exchange and queue name, to share one vhost between deployments."""
    order_side: OrderSide = OrderSide.PAYRELAY
    """`nestjs`: NestJS packets both ways, to `nestjs_queue`; payments roles only, RabbitMQ."""
    nestjs_queue: str = "orders.nestjs-payment-events"
    """The queue the NestJS service consumes (`options.queue`, after the name prefix)."""
    nestjs_queue_arguments: dict[str, str | int | bool] = {"x-queue-type": "quorum"}
    """JSON: the NestJS service's `queueOptions.arguments`, exactly (else PRECONDITION_FAILED)."""
    consumer_prefetch: int = Field(default=200, gt=0)
    """How many unacked messages a consumer holds; its batches are at most this big."""
    gateway_base_url: str = "http://127.0.0.1:8089"
    gateway_access_token: SecretStr = SecretStr("TEST-payrelay-simulator-token")
    gateway_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_secrets: SecretStr = SecretStr("payrelay-simulator-webhook-secret")
    """Comma-separated: every secret listed is accepted, so a rotation can overlap."""
    admin_token: SecretStr = SecretStr("")
    """Bearer token for the /admin endpoints; empty disables them (every call answers 401)."""
    service_token: SecretStr = SecretStr("")
    """Bearer token the orders service presents to the payments service's `POST /checkout`;
    empty disables /checkout (every call answers 401), except in a process that runs both
    APIs (the embedded stack, `serve --role all`), which makes a random one for itself."""
    webhook_max_body_bytes: int = Field(default=64 * 1024, gt=0)
    ipn_window_seconds: float = Field(default=5.0, gt=0, le=300)
    """Unsigned legacy IPNs about one id within this window make one gateway fetch, at its end."""
    webhook_ts_tolerance_seconds: float = Field(default=300.0, gt=0, le=3600)
    """A signed webhook whose `ts` is further than this from now is refused (401), so a
    captured request cannot be replayed later. MercadoPago signs every retry with a fresh
    ts, so this only has to cover clock difference plus delivery time."""
    payment_fetch_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    """One payment is fetched at most once per interval by a processor, whatever arrives
    about it; a notification arriving inside it is fetched when it ends. 0 disables."""
    public_url: str = "http://127.0.0.1:8000"
    """Where the gateway reaches the payments service's public listener (webhooks)."""
    payments_url: str = "http://127.0.0.1:8002"
    """Where the orders service reaches the payments service's internal listener (checkout)."""
    http_header_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    """A request line and headers must arrive within this, or the connection is closed."""
    http_body_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    """A body must arrive within this after its headers, or the connection is closed."""
    http_keep_alive_seconds: int = Field(default=5, gt=0, le=300)
    """An idle connection between two requests is closed after this."""
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    """A request line plus headers larger than this gets 400."""
    http_max_connections: int = Field(default=2000, gt=0)
    """Open connections per listener; one more is closed at once."""
    http_max_concurrent_requests: int = Field(default=1000, gt=0)
    """Requests in progress per listener; one more gets 503 with Retry-After."""
    http_forwarded_allow_ips: str = ""
    """Comma-separated proxy addresses or networks (or `*`) whose X-Forwarded-For names the
    client; empty trusts no header, so the TCP peer is the client for per-client limits."""
    webhook_rejection_burst: int = Field(default=20, gt=0)
    """Rejected (4xx) requests one client may send to the public listener in a burst..."""
    webhook_rejections_per_second: float = Field(default=1.0, gt=0)
    """...and then per second; past it, 429 before the request is read."""
    rejection_log_per_second: float = Field(default=5.0, gt=0)
    """Log lines about rejected requests per second (a burst of 20); all are counted."""
    amount_mismatch_policy: MismatchPolicy = MismatchPolicy.HOLD
    """A payment whose amount differs from its order's: `refund` it, or `hold` for review."""
    order_expiry_seconds: float = Field(default=86_400.0, gt=0)
    """An order unpaid this long expires; a payment that arrives later is refunded."""
    reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    """How often the reconciler looks for what fell through."""
    reconcile_outcome_sla_seconds: float = Field(default=60.0, gt=0)
    """An approved payment unanswered by the order side this long is published again."""
    reconcile_checkout_age_seconds: float = Field(default=300.0, gt=0)
    """A checkout this old with no approved payment is searched for in the gateway."""
    reconcile_unsettled_age_seconds: float = Field(default=300.0, gt=0)
    """A pending/in_process/authorized payment this old is fetched again."""
    reconcile_sweep_overlap_seconds: float = Field(default=120.0, ge=0)
    """Each sweep re-reads this much before where the last one ended; keep it above the
    gateway's listing delay for new payments plus any clock difference with it."""
    reconcile_sweep_page_size: int = Field(default=100, gt=0, le=1000)
    """Payments asked per page of the sweep (MercadoPago refuses pages that are too big)."""
    reconcile_sweep_max_pages: int = Field(default=20, gt=0)
    """Pages one reconciler run reads at most; the next run goes on from where it stopped."""
    reconcile_sweep_lookback_seconds: float = Field(default=172_800.0, gt=0)
    """How far back the very first sweep (no watermark stored yet) starts."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """`payrelay serve` also serves /healthz, /readyz and /metrics on this port (for a
    worker-only process, its one listener); unset, none. The APIs serve /metrics anyway."""
    consumer_retry_delays: str = "1,5,30,120,600"
    """Seconds between a consumer's retries of a failing message; then a dead letter."""
    processor_batch_size: int = Field(default=200, gt=0)
    relay_batch_size: int = Field(default=500, gt=0)
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    heartbeat_interval_seconds: float = Field(default=5.0, gt=0)
    """How often each worker process records its heartbeat; `payrelay status` shows it down
    once it has missed three."""
    lease_seconds: float = Field(default=3.0, gt=0)
    """How long a claim on rows lasts unless renewed: a processor, relay or refunder renews
    it every third of this while the work is in hand, so after a crash the rows are due
    again within this (keep it well above a database round trip)."""
    retry_base_seconds: float = Field(default=0.5, gt=0)
    retry_cap_seconds: float = Field(default=600.0, gt=0)
    retry_permanent_tries: int = Field(default=3, gt=0)
    """Tries of work failing for a reason waiting cannot heal (401/403, a malformed
    resource, an unroutable message) before it is given up as dead with the reason."""
    test_only_forgetful_inbox: bool = False
    """TEST ONLY, a deliberately broken build: both consumers' inboxes remember nothing, so
    every redelivery is applied again. It exists so that a test can show `payrelay chaos`
    failing (tests/integration/test_chaos.py); never set it anywhere else."""
    otel: bool = False
    """OpenTelemetry tracing, one trace per payment from webhook to reply (needs the `otel`
    extra); OTEL_EXPORTER_OTLP_ENDPOINT and the other standard OTEL_* variables apply."""
    otel_exporter: Literal["otlp", "console"] = "otlp"
    """Where spans go with PAYRELAY_OTEL: OTLP over HTTP, or stdout ("console", to try it)."""
    not_visible_grace_seconds: float = Field(default=600.0, gt=0)
    """How long a notified payment may stay unknown to the gateway (404) before its
    notification is given up as dead."""

    @field_validator("consumer_retry_delays")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        RetrySchedule.parse(value)  # a typo fails at start-up, with the reason
        return value

    @field_validator("otel")
    @classmethod
    def _otel_installed(cls, value: bool) -> bool:
        """Tracing asked for without its extra fails here, before anything is opened."""
        if value:
            try:
                import opentelemetry.sdk.trace  # noqa: F401
            except ImportError as exc:
                raise ValueError("needs the otel extra: pip install 'payrelay[otel]'") from exc
        return value

    @field_validator("orders_database_url", mode="before")
    @classmethod
    def _no_orders_database(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("http_forwarded_allow_ips")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",") if e.strip()):
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as exc:
                    raise ValueError(f"not an address or network: {entry!r}") from exc
        return value

    @model_validator(mode="after")
    def _distinct_tokens(self) -> Self:
        service = self.service_token.get_secret_value()
        if service and service == self.admin_token.get_secret_value():
            # One leaked token must not open both: the orders service holds the service
            # token, and it has no business replaying dead letters.
            raise ValueError("PAYRELAY_SERVICE_TOKEN must differ from PAYRELAY_ADMIN_TOKEN")
        return self

    def nestjs_topology(self) -> tuple[str, dict[str, str | int | bool]] | None:
        """NestJS mode's queue and its arguments; None when payrelay is its own order side."""
        nestjs = self.order_side is OrderSide.NESTJS
        return (self.nestjs_queue, self.nestjs_queue_arguments) if nestjs else None

    def consumer_retry_schedule(self) -> RetrySchedule:
        return RetrySchedule.parse(self.consumer_retry_delays)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            backoff=Backoff(base=self.retry_base_seconds, cap=self.retry_cap_seconds),
            schedule=self.consumer_retry_schedule(),
            permanent_tries=self.retry_permanent_tries,
            not_visible_grace=timedelta(seconds=self.not_visible_grace_seconds),
        )

    def reconcile_policy(self) -> ReconcilePolicy:
        return ReconcilePolicy(
            outcome_sla=timedelta(seconds=self.reconcile_outcome_sla_seconds),
            checkout_min_age=timedelta(seconds=self.reconcile_checkout_age_seconds),
            unsettled_age=timedelta(seconds=self.reconcile_unsettled_age_seconds),
            sweep_overlap=timedelta(seconds=self.reconcile_sweep_overlap_seconds),
            sweep_page_size=self.reconcile_sweep_page_size,
            sweep_max_pages=self.reconcile_sweep_max_pages,
            sweep_first_lookback=timedelta(seconds=self.reconcile_sweep_lookback_seconds),
        )

    def with_own_service_token(self) -> Settings:
        """These settings, with a random service token if none is set.

        For a process that runs both the orders API and the payments API: the token never
        leaves the process, so nothing outside it can call `/checkout`, and a demo needs no
        setup. A token that is set is kept, so other processes can use it too.
        """
        if self.service_token.get_secret_value():
            return self
        return self.model_copy(update={"service_token": SecretStr(secrets.token_urlsafe(32))})

    def webhook_secret_list(self) -> list[str]:
        secrets = [s.strip() for s in self.webhook_secrets.get_secret_value().split(",")]
        active = [s for s in secrets if s]
        if not active:
            raise ValueError("PAYRELAY_WEBHOOK_SECRETS must name at least one secret")
        return active

    @property
    def notification_url(self) -> str:
        return self.public_url.rstrip("/") + "/webhooks/mercadopago"

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret hidden, fit to print.

        A secret setting prints as `****`; every URL, secret or not, prints with the
        password in it (and any credential-like query parameter) replaced by `****`.
        """
        values = self.model_dump()
        for name, value in values.items():
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                # Only a URL setting is shown in part: a token that happens to hold "://"
                # is still a token.
                url = name.endswith("_url") and "://" in secret
                if url or secret in ("", "local"):  # "local": the in-process transport
                    values[name] = mask_url(secret)
                else:
                    values[name] = "****"
            elif isinstance(value, str) and "://" in value:
                values[name] = mask_url(value)
        return values
