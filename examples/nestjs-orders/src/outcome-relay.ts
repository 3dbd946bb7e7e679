// Emits the outcomes the order transactions wrote, then marks them sent. `emit` resolves
// once the broker confirmed the message (amqp-connection-manager's confirm channel), so a
// row is marked sent only when a durable queue holds it; anything else is emitted again
// with the same message id, which payrelay's inbox recognises.
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { ClientProxy, RmqRecordBuilder, RmqRecordOptions } from '@nestjs/microservices';
import { Pool } from 'pg';
import { lastValueFrom, timeout } from 'rxjs';
import { Config } from './config';

export const PAYRELAY_CLIENT = 'PAYRELAY_CLIENT';
const BATCH = 100;
// An emit the broker has not confirmed by then is given up for this pass (it may still
// arrive: the resend carries the same message id, so that is harmless).
const CONFIRM_TIMEOUT_MS = 10_000;

@Injectable()
export class OutcomeRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('outcome-relay');
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly pool: Pool,
    @Inject(PAYRELAY_CLIENT) private readonly payrelay: ClientProxy,
    @Inject('CONFIG') private readonly config: Config,
  ) {}

  onApplicationBootstrap(): void {
    // Also picks up what a crash left unsent, and outcomes re-queued by duplicates.
    this.timer = setInterval(() => this.wake(), this.config.relayIntervalMs);
    this.wake();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Run a pass now, or right after the one in progress. */
  wake(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.passes().finally(() => { this.running = null; });
  }

  private async passes(): Promise<void> {
    do {
      this.again = false;
      try {
        while ((await this.pass()) === BATCH) { /* a full batch: there may be more */ }
      } catch (err) {
        this.log.warn(`outcomes not sent yet, retried in ${this.config.relayIntervalMs} ms: ${err}`);
        return;
      }
    } while (this.again);
  }

  /** Emit one batch of unsent outcomes; returns how many were claimed. */
  private async pass(): Promise<number> {
    const db = await this.pool.connect();
    try {
      await db.query('BEGIN');
      // SKIP LOCKED: two instances never emit the same row at once.
      const { rows } = await db.query(
        `SELECT message_id, pattern, data FROM outbox WHERE sent_at IS NULL
          ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED`, [BATCH]);
      const results = await Promise.allSettled(rows.map((row) => this.emit(row)));
      const sent = rows.filter((_, i) => results[i].status === 'fulfilled').map((r) => r.message_id);
      await db.query('UPDATE outbox SET sent_at = now() WHERE message_id = ANY($1)', [sent]);
      await db.query('COMMIT');
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      return rows.length;
    } catch (err) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      db.release();
    }
  }

  private emit(row: { message_id: string; pattern: string; data: Record<string, unknown> }) {
    // The message id travels twice: inside `data` (payrelay's inbox key) and as the AMQP
    // property, so that broker tools show it too. payrelay refuses the two if they differ.
    // NestJS passes every option on to amqplib's publish, correlationId too, though its
    // RmqRecordOptions type does not list it.
    const options: RmqRecordOptions & { correlationId: string } = {
      messageId: row.message_id,
      correlationId: String(row.data.correlation_id),
      persistent: true,
      contentType: 'application/json',
      type: row.pattern,
    };
    const record = new RmqRecordBuilder(row.data).setOptions(options).build();
    const confirmed = this.payrelay.emit(row.pattern, record).pipe(timeout(CONFIRM_TIMEOUT_MS));
    return lastValueFrom(confirmed, { defaultValue: undefined });
  }
}
