// The gateway process: PORT, JWT_SECRET (HS256 key) and EVENT_SERVICE_URL from the environment.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { GatewayModule } from './gateway.module';

async function bootstrap(): Promise<void> {
  if (!process.env.JWT_SECRET || process.env.JWT_SECRET.length < 32) {
    throw new Error('JWT_SECRET must be set, at least 32 bytes');
  }
  const app = await NestFactory.create(GatewayModule);
  app.setGlobalPrefix('api/v1');
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), process.env.BIND_ADDRESS ?? '127.0.0.1');
}

void bootstrap();
