// One handler per payment event type payrelay sends (domain/events.py). NestJS nacks an
// event nobody handles without requeueing it, so every type needs its pattern here.
import { Controller, Logger } from '@nestjs/common';
import { Ctx, EventPattern, Payload, RmqContext } from '@nestjs/microservices';
import { OrderStore } from './order-store';
import { OutcomeRelay } from './outcome-relay';
import { PaymentEvent } from './order-rules';
import { malformed } from './validate';

const RETRY_DELAY_MS = 1000;

@Controller()
export class PaymentEventsController {
  private readonly log = new Logger('payment-events');

  constructor(private readonly store: OrderStore, private readonly relay: OutcomeRelay) {}

  @EventPattern('payment.pending')
  pending(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.in_process')
  inProcess(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.authorized')
  authorized(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.approved')
  approved(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.rejected')
  rejected(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.cancelled')
  cancelled(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.refunded')
  refunded(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.charged_back')
  chargedBack(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  @EventPattern('payment.in_mediation')
  inMediation(@Payload() data: PaymentEvent, @Ctx() ctx: RmqContext) { return this.handle(data, ctx); }

  /** Apply, commit, then ack; the outcome goes out from the outbox after the commit. */
  private async handle(data: PaymentEvent, ctx: RmqContext): Promise<void> {
    const channel = ctx.getChannelRef();
    const message = ctx.getMessage();
    const problem = malformed(data, ctx.getPattern());
    if (problem !== null) {
      // It will never apply: keep it out of the way (dead-lettered if the queue has a
      // dead-letter exchange among its arguments), and say so.
      this.log.error(`dropping malformed ${ctx.getPattern()}: ${problem}`);
      channel.nack(message, false, false);
      return;
    }
    try {
      await this.store.apply(data);
    } catch (err) {
      // Not acked: back in the queue after a pause, and the inbox makes the retry safe.
      this.log.warn(`${data.message_id} failed, retried in ${RETRY_DELAY_MS} ms: ${err}`);
      setTimeout(() => channel.nack(message, false, true), RETRY_DELAY_MS);
      return;
    }
    channel.ack(message);
    this.relay.wake();
  }
}
