-- The order service's tables. Created by the service at start (idempotent), under an
-- advisory lock so that two instances starting together do not race each other.

CREATE TABLE IF NOT EXISTS orders (
    order_id      text PRIMARY KEY,
    status        text NOT NULL DEFAULT 'pending_payment' CHECK (status IN (
                      'pending_payment', 'paid', 'cancelled', 'expired', 'refunded',
                      'needs_review')),
    total         numeric NOT NULL CHECK (total > 0),  -- exact decimal, never a float
    currency      text NOT NULL,
    paid_by       text,               -- the payment that pays it (the keeper)
    review_reason text,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- What the service knows of each payment: the highest version applied (older events are
-- stale) and the outcome it decided, which is decided once and then repeated.
CREATE TABLE IF NOT EXISTS order_payments (
    payment_id   text PRIMARY KEY,
    order_id     text NOT NULL,
    last_version integer NOT NULL,
    last_status  text NOT NULL,
    outcome      text CHECK (outcome IN ('order.payment_applied', 'order.payment_rejected')),
    reason       text,
    approved_at  timestamptz
);

-- One row per payment event applied, by payrelay's message id: a redelivery finds it.
-- `reply_id` is the outcome it was answered with, sent again on a duplicate.
CREATE TABLE IF NOT EXISTS inbox (
    message_id  uuid PRIMARY KEY,
    payment_id  text NOT NULL,
    reply_id    uuid,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS inbox_payment ON inbox (payment_id);

-- Outcomes to emit, written in the transaction that decided them; `sent_at` is set once
-- the broker confirmed the emit. A crash in between leaves it unsent, and the relay loop
-- emits it again (same message id: payrelay's inbox drops the repeat).
CREATE TABLE IF NOT EXISTS outbox (
    message_id uuid PRIMARY KEY,
    pattern    text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;
