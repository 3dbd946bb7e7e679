// Everything the service is told, read once from the environment at start.

export interface Config {
  rabbitmqUrl: string;
  /** The queue payrelay delivers payment events to: its PAYRELAY_NESTJS_QUEUE, prefixed. */
  paymentsQueue: string;
  /** Must equal payrelay's PAYRELAY_NESTJS_QUEUE_ARGUMENTS, or one side's declare fails. */
  queueArguments: Record<string, unknown>;
  /** payrelay's outcome queue (`<prefix>payments.order-events`); payrelay declares it. */
  outcomeQueue: string;
  databaseUrl: string;
  prefetch: number;
  relayIntervalMs: number;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const prefix = env.PAYRELAY_BROKER_NAME_PREFIX ?? '';
  return {
    rabbitmqUrl: env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
    paymentsQueue: prefix + (env.PAYRELAY_NESTJS_QUEUE ?? 'orders.nestjs-payment-events'),
    queueArguments: JSON.parse(env.PAYRELAY_NESTJS_QUEUE_ARGUMENTS ?? '{"x-queue-type":"quorum"}'),
    outcomeQueue: prefix + 'payments.order-events',
    databaseUrl: required(env, 'DATABASE_URL'),
    prefetch: Number(env.PREFETCH ?? '50'),
    relayIntervalMs: Number(env.RELAY_INTERVAL_MS ?? '1000'),
  };
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} must be set`);
  return value;
}
