// The order-side rules payrelay's own order side follows (docs/architecture.md, "Order"),
// as pure functions: what one payment event does to its order and its payment record.
//
// Each event carries the payment's whole current status and version, so the service keeps
// per payment the highest version it applied and the outcome it decided, and reasons from
// the latest status. Any arrival order of one payment's events then ends where version
// order would, and of two approved payments for one order exactly one is kept.

export type OrderStatus =
  | 'pending_payment' | 'paid' | 'cancelled' | 'expired' | 'refunded' | 'needs_review';

export type OutcomePattern = 'order.payment_applied' | 'order.payment_rejected';

export type RejectionReason =
  | 'already_paid' | 'order_cancelled' | 'order_expired' | 'amount_mismatch'
  | 'unknown_order' | 'amount_precision';

/** The `data` of a payrelay payment event: its envelope (docs/architecture.md). */
export interface PaymentEvent {
  message_id: string;
  schema_version: number;
  type: string;
  occurred_at: string;
  order_id: string;
  payment_id: string;
  provider: string;
  amount: string; // decimal text, never a JSON number
  currency: string;
  payment_version: number;
  correlation_id: string;
  approved_at: string | null;
  amount_problem?: string; // schema 2: the gateway's amount has no exact minor units
  [field: string]: unknown;
}

export interface Order {
  orderId: string;
  status: OrderStatus;
  paidBy: string | null;
  version: number;
  amountMatches: boolean; // the event's amount equals the total by value (done in SQL)
}

export interface Outcome {
  pattern: OutcomePattern;
  reason: RejectionReason | null;
}

export interface PaymentRecord {
  paymentId: string;
  orderId: string;
  lastVersion: number;
  lastStatus: string;
  outcome: Outcome | null;
  approvedAt: string | null;
}

export interface Effect {
  stale: boolean;
  order: Order | null; // after the event; the same object when nothing moved
  orderChanged: boolean;
  reviewReason: RejectionReason | null;
  record: PaymentRecord;
  decided: Outcome | null; // set when this event decided the payment's outcome
  displaced: PaymentRecord | null; // the former keeper, now rejected as already_paid
}

/** Statuses a payment can only hold once money was captured. */
const WAS_APPROVED = new Set(['approved', 'in_mediation', 'refunded', 'charged_back']);
const REVERSED = new Set(['refunded', 'charged_back']);

const REJECTION_FOR_STATUS: Record<OrderStatus, RejectionReason | null> = {
  pending_payment: null,
  paid: 'already_paid',
  refunded: 'already_paid',
  needs_review: 'already_paid',
  cancelled: 'order_cancelled',
  expired: 'order_expired',
};

const applied = (): Outcome => ({ pattern: 'order.payment_applied', reason: null });
const rejected = (reason: RejectionReason): Outcome => ({
  pattern: 'order.payment_rejected', reason,
});

/** Apply one payment event; `keeper` is the record of the payment paying the order. */
export function applyPaymentEvent(
  order: Order | null,
  known: PaymentRecord | null,
  event: PaymentEvent,
  keeper: PaymentRecord | null,
): Effect {
  const status = event.type.replace(/^payment\./, '');
  const unchanged = { order, orderChanged: false, reviewReason: null, displaced: null };
  if (known !== null && event.payment_version <= known.lastVersion) {
    return { ...unchanged, stale: true, record: known, decided: null };
  }
  let record: PaymentRecord = {
    paymentId: event.payment_id,
    orderId: event.order_id,
    lastVersion: event.payment_version,
    lastStatus: status,
    outcome: known?.outcome ?? null,
    approvedAt: known?.approvedAt ?? event.approved_at,
  };
  if (WAS_APPROVED.has(status) && record.outcome === null) {
    if (order !== null && keeper !== null && displaces(order, keeper, record, event)) {
      record = { ...record, outcome: applied() };
      return {
        stale: false, record, decided: record.outcome, reviewReason: null, orderChanged: true,
        order: { ...order, paidBy: record.paymentId, version: order.version + 1 },
        displaced: { ...keeper, outcome: rejected('already_paid') },
      };
    }
    const decision = decide(order, event);
    record = { ...record, outcome: decision.outcome };
    return { ...unchanged, ...decision, stale: false, record, decided: decision.outcome };
  }
  if (REVERSED.has(status) && order?.status === 'paid' && order.paidBy === event.payment_id) {
    const refunded = { ...order, status: 'refunded' as const, version: order.version + 1 };
    return { ...unchanged, stale: false, record, decided: null, order: refunded,
             orderChanged: true };
  }
  return { ...unchanged, stale: false, record, decided: null };
}

function decide(order: Order | null, event: PaymentEvent): {
  order: Order | null; orderChanged: boolean; reviewReason: RejectionReason | null;
  outcome: Outcome;
} {
  const same = { order, orderChanged: false, reviewReason: null };
  if (event.amount_problem !== undefined) {
    // No exact amount to pay or to refund: a person decides, and a waiting order waits.
    if (order?.status !== 'pending_payment') return { ...same, outcome: rejected('amount_precision') };
    const held = { ...order, status: 'needs_review' as const, version: order.version + 1 };
    return { order: held, orderChanged: true, reviewReason: 'amount_precision',
             outcome: rejected('amount_precision') };
  }
  if (order === null) return { ...same, outcome: rejected('unknown_order') };
  const refusal = REJECTION_FOR_STATUS[order.status];
  if (refusal !== null) return { ...same, outcome: rejected(refusal) };
  if (!order.amountMatches) return { ...same, outcome: rejected('amount_mismatch') };
  const paid = { ...order, status: 'paid' as const, paidBy: event.payment_id,
                 version: order.version + 1 };
  return { order: paid, orderChanged: true, reviewReason: null, outcome: applied() };
}

/** The keeper rule: an earlier approval of the right amount takes the order's place. */
function displaces(
  order: Order, keeper: PaymentRecord, record: PaymentRecord, event: PaymentEvent,
): boolean {
  return order.status === 'paid'
    && keeper.paymentId === order.paidBy && order.paidBy !== record.paymentId
    && keeper.lastStatus === 'approved' // a disputed keeper stays put
    && event.amount_problem === undefined
    && order.amountMatches
    && precedes(record, keeper);
}

/** The earliest approval wins, then the lowest numeric id, then the lowest id. */
export function precedes(a: PaymentRecord, b: PaymentRecord): boolean {
  const when = (r: PaymentRecord) => (r.approvedAt ? Date.parse(r.approvedAt) : Infinity);
  if (when(a) !== when(b)) return when(a) < when(b);
  const number = (r: PaymentRecord) => (/^\d+$/.test(r.paymentId) ? BigInt(r.paymentId) : 0n);
  if (number(a) !== number(b)) return number(a) < number(b);
  return a.paymentId < b.paymentId;
}
