// Applying a payment event: ONE PostgreSQL transaction holds the inbox row, the order
// update, the payment record and the outcome to send. A redelivery meets its inbox row,
// changes nothing, and queues the recorded outcome again, so a lost answer heals itself.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { Pool, PoolClient } from 'pg';
import {
  applyPaymentEvent, Effect, Order, OrderStatus, Outcome, PaymentEvent, PaymentRecord,
} from './order-rules';

const SCHEMA_LOCK = 741_200_013; // any constant: serialises concurrent schema creation

export async function createSchema(pool: Pool): Promise<void> {
  const sql = readFileSync(join(__dirname, '..', 'sql', 'schema.sql'), 'utf8');
  await inTransaction(pool, async (db) => {
    await db.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
    await db.query(sql);
  });
}

export type Applied = 'applied' | 'duplicate' | 'stale';

@Injectable()
export class OrderStore {
  constructor(private readonly pool: Pool) {}

  async apply(event: PaymentEvent): Promise<Applied> {
    return inTransaction(this.pool, async (db) => {
      // Lock order: the order (an advisory lock, so an unknown order serialises too),
      // then the inbox. A concurrent copy of this message then commits first, and this
      // one finds its inbox row instead of racing it.
      await db.query("SELECT pg_advisory_xact_lock(hashtext('order:' || $1))", [event.order_id]);
      const order = await readOrder(db, event);
      const fresh = await db.query(
        'INSERT INTO inbox (message_id, payment_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [event.message_id, event.payment_id],
      );
      if (fresh.rowCount === 0) {
        await db.query(
          `UPDATE outbox SET sent_at = NULL WHERE message_id =
             (SELECT reply_id FROM inbox WHERE message_id = $1)`, [event.message_id]);
        return 'duplicate';
      }
      const records = await readRecords(db, [event.payment_id, order?.paidBy ?? null]);
      const keeper = order?.paidBy && order.paidBy !== event.payment_id
        ? records.get(order.paidBy) ?? null : null;
      const effect = applyPaymentEvent(order, records.get(event.payment_id) ?? null, event, keeper);
      if (effect.stale) return 'stale';
      await this.write(db, event, effect);
      return 'applied';
    });
  }

  private async write(db: PoolClient, event: PaymentEvent, effect: Effect): Promise<void> {
    await saveRecord(db, effect.record);
    if (effect.orderChanged && effect.order !== null) {
      await saveOrder(db, effect.order, effect.reviewReason);
    }
    if (effect.decided !== null) {
      const reply = await queueOutcome(db, {
        ...event,
        type: effect.decided.pattern,
        message_id: randomUUID(), // this answer's id, repeated on every resend
        reason: effect.decided.reason,
        causation_id: event.message_id,
        occurred_at: new Date().toISOString(),
        order_version: effect.order?.version ?? null,
      });
      await db.query('UPDATE inbox SET reply_id = $1 WHERE message_id = $2',
                     [reply, event.message_id]);
    }
    if (effect.displaced !== null && effect.order !== null) {
      await this.displace(db, event, effect.displaced, effect.order);
    }
  }

  /** The former keeper is now the surplus payment: payrelay refunds it on this answer. */
  private async displace(
    db: PoolClient, cause: PaymentEvent, displaced: PaymentRecord, order: Order,
  ): Promise<void> {
    await saveRecord(db, displaced);
    const outcome = displaced.outcome as Outcome;
    const total = await db.query('SELECT total::text AS total FROM orders WHERE order_id = $1',
                                 [order.orderId]);
    const reply = await queueOutcome(db, {
      message_id: randomUUID(),
      schema_version: 1,
      type: outcome.pattern,
      occurred_at: new Date().toISOString(),
      order_id: order.orderId,
      payment_id: displaced.paymentId,
      provider: cause.provider,
      amount: total.rows[0].total, // it paid the order, so it was for the order's total
      currency: cause.currency,
      payment_version: displaced.lastVersion,
      correlation_id: `${cause.provider}:${displaced.paymentId}`,
      reason: outcome.reason,
      causation_id: cause.message_id,
      approved_at: null,
      order_version: order.version,
    });
    // Redeliveries of the displaced payment's events repeat the new answer.
    await db.query(
      'UPDATE inbox SET reply_id = $1 WHERE payment_id = $2 AND reply_id IS NOT NULL',
      [reply, displaced.paymentId]);
  }
}

async function readOrder(db: PoolClient, event: PaymentEvent): Promise<Order | null> {
  // The amount is compared by value in SQL (numeric), never through a JS float.
  const { rows } = await db.query(
    `SELECT order_id, status, paid_by, version, total = $2::numeric AS amount_matches,
            currency = $3 AS currency_matches
       FROM orders WHERE order_id = $1 FOR UPDATE`,
    [event.order_id, event.amount, event.currency]);
  if (rows.length === 0) return null;
  const row = rows[0];
  return {
    orderId: row.order_id, status: row.status as OrderStatus, paidBy: row.paid_by,
    version: row.version, amountMatches: row.amount_matches && row.currency_matches,
  };
}

async function readRecords(
  db: PoolClient, ids: (string | null)[],
): Promise<Map<string, PaymentRecord>> {
  const { rows } = await db.query(
    `SELECT payment_id, order_id, last_version, last_status, outcome, reason,
            to_json(approved_at) #>> '{}' AS approved_at
       FROM order_payments WHERE payment_id = ANY($1)`, [ids.filter((id) => id !== null)]);
  return new Map(rows.map((r) => [r.payment_id, {
    paymentId: r.payment_id, orderId: r.order_id, lastVersion: r.last_version,
    lastStatus: r.last_status, approvedAt: r.approved_at,
    outcome: r.outcome ? { pattern: r.outcome, reason: r.reason } : null,
  }]));
}

async function saveRecord(db: PoolClient, r: PaymentRecord): Promise<void> {
  await db.query(
    `INSERT INTO order_payments
       (payment_id, order_id, last_version, last_status, outcome, reason, approved_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (payment_id) DO UPDATE SET last_version = EXCLUDED.last_version,
       last_status = EXCLUDED.last_status, outcome = EXCLUDED.outcome,
       reason = EXCLUDED.reason, approved_at = EXCLUDED.approved_at`,
    [r.paymentId, r.orderId, r.lastVersion, r.lastStatus, r.outcome?.pattern ?? null,
     r.outcome?.reason ?? null, r.approvedAt]);
}

async function saveOrder(
  db: PoolClient, order: Order, reviewReason: string | null,
): Promise<void> {
  // Under the order's lock the version cannot have moved; checking it anyway means a
  // writer that skipped the lock makes this transaction fail instead of overwriting it.
  const saved = await db.query(
    `UPDATE orders SET status = $2, paid_by = $3, version = $4, review_reason = $5,
            updated_at = now()
      WHERE order_id = $1 AND version = $4 - 1`,
    [order.orderId, order.status, order.paidBy, order.version, reviewReason]);
  if (saved.rowCount !== 1) throw new Error(`order ${order.orderId} moved meanwhile`);
}

async function queueOutcome(db: PoolClient, data: Record<string, unknown>): Promise<string> {
  await db.query('INSERT INTO outbox (message_id, pattern, data) VALUES ($1, $2, $3)',
                 [data.message_id, data.type, JSON.stringify(data)]);
  return data.message_id as string;
}

async function inTransaction<T>(pool: Pool, work: (db: PoolClient) => Promise<T>): Promise<T> {
  const db = await pool.connect();
  try {
    await db.query('BEGIN');
    const result = await work(db);
    await db.query('COMMIT');
    return result;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    db.release();
  }
}
