import { HttpModule } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { EventsController } from './events.controller';
import { JwtStrategy } from './jwt.strategy';

@Module({
  imports: [
    PassportModule,
    HttpModule.register({ baseURL: process.env.EVENT_SERVICE_URL ?? 'http://127.0.0.1:3001', timeout: 5000 }),
  ],
  controllers: [EventsController],
  providers: [JwtStrategy],
})
export class GatewayModule {}
