import { DynamicModule, Module } from '@nestjs/common';
import { ClientsModule, Transport } from '@nestjs/microservices';
import { Pool } from 'pg';
import { Config } from './config';
import { OrderStore } from './order-store';
import { OutcomeRelay, PAYRELAY_CLIENT } from './outcome-relay';
import { PaymentEventsController } from './payment-events.controller';

@Module({})
export class AppModule {
  static register(config: Config, pool: Pool): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ClientsModule.register([{
          name: PAYRELAY_CLIENT,
          transport: Transport.RMQ,
          options: {
            urls: [config.rabbitmqUrl],
            queue: config.outcomeQueue,
            // payrelay owns this queue and its arguments (quorum, retries, DLQ): asserting
            // it with other options would fail, so this client only sends to it.
            noAssert: true,
            persistent: true,
          },
        }]),
      ],
      controllers: [PaymentEventsController],
      providers: [
        { provide: Pool, useValue: pool },
        { provide: 'CONFIG', useValue: config },
        OrderStore,
        OutcomeRelay,
      ],
    };
  }
}
