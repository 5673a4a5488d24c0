// The event service process: PORT from the environment; reached only through the gateway.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { EventsModule } from './events.module';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(EventsModule);
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3001), process.env.BIND_ADDRESS ?? '127.0.0.1');
}

void bootstrap();
