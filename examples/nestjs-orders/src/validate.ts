import { PaymentEvent } from './order-rules';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DECIMAL = /^-?\d+(\.\d+)?$/;

/** Why `data` is not a payment event this service can apply, or null if it is. */
export function malformed(data: PaymentEvent, pattern: string): string | null {
  if (typeof data !== 'object' || data === null) return 'data is not an object';
  if (typeof data.message_id !== 'string' || !UUID.test(data.message_id)) return 'message_id';
  if (data.type !== pattern) return `type ${String(data.type)} differs from the pattern`;
  for (const key of ['order_id', 'payment_id', 'provider', 'currency', 'correlation_id']) {
    if (typeof data[key] !== 'string' || data[key] === '') return key;
  }
  if (typeof data.amount !== 'string' || !DECIMAL.test(data.amount)) return 'amount';
  if (!Number.isInteger(data.payment_version) || data.payment_version < 1) {
    return 'payment_version';
  }
  return null;
}
