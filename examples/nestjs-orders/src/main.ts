// The NestJS order service: consumes payrelay's payment events (NestJS mode) with
// `Transport.RMQ`, applies each once, and answers with the outcome.
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MicroserviceOptions, Transport } from '@nestjs/microservices';
import { Pool } from 'pg';
import { AppModule } from './app.module';
import { readConfig } from './config';
import { createSchema } from './order-store';

async function main(): Promise<void> {
  const config = readConfig();
  const pool = new Pool({ connectionString: config.databaseUrl, max: 10 });
  await createSchema(pool);
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(
    AppModule.register(config, pool),
    {
      transport: Transport.RMQ,
      options: {
        urls: [config.rabbitmqUrl],
        queue: config.paymentsQueue,
        // Exactly what payrelay declares (durable, PAYRELAY_NESTJS_QUEUE_ARGUMENTS):
        // any other options make the second declaration fail with PRECONDITION_FAILED.
        queueOptions: { durable: true, arguments: config.queueArguments },
        // Ack by hand, after the commit: a crash before it means a redelivery, which the
        // inbox turns into a repeat of the recorded outcome.
        noAck: false,
        prefetchCount: config.prefetch,
      },
    },
  );
  app.enableShutdownHooks();
  await app.listen();
  new Logger('nestjs-orders').log(`listening on ${config.paymentsQueue}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
