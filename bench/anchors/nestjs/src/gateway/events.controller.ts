// GET /api/v1/events on the gateway: the caller is authenticated by the JWT guard, then the
// request goes over HTTP to the event service with the caller's identity in headers, and the
// service's answer is returned as it came.
import { HttpService } from '@nestjs/axios';
import { Controller, Get, Query, Req, UseGuards } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import { firstValueFrom } from 'rxjs';
import { Caller } from './jwt.strategy';

@Controller('events')
@UseGuards(AuthGuard('jwt'))
export class EventsController {
  constructor(private readonly http: HttpService) {}

  @Get()
  async list(@Req() req: { user: Caller }, @Query() query: Record<string, string>): Promise<unknown> {
    const { data } = await firstValueFrom(
      this.http.get('/events', {
        params: query,
        headers: { 'x-user-id': req.user.userId, 'x-user-roles': req.user.roles.join(',') },
      }),
    );
    return data;
  }
}
