// The event service's GET /events: a fixed first page of 20 events (no database), in the shape
// the platform answers (id, title, window, status, rewards), serialised on every request.
import { Controller, Get, Headers } from '@nestjs/common';

interface EventView {
  id: string;
  title: string;
  description: string;
  startDate: string;
  endDate: string;
  status: string;
  approval: string;
  claimPeriod: string;
  conditions: unknown[];
  rewards: { rewardDefinitionId: string; quantity: number; stock: number | null }[];
  createdAt: string;
  updatedAt: string;
}

const start = new Date(Date.now() - 3600_000).toISOString();
const end = new Date(Date.now() + 86400_000).toISOString();
const EVENTS: EventView[] = Array.from({ length: 20 }, (_, i) => ({
  id: '65f00000000000000000' + (0x100 + i).toString(16).padStart(4, '0'),
  title: 'bench event ' + (i + 1),
  description: 'an event of the benchmark anchor',
  startDate: start,
  endDate: end,
  status: 'ACTIVE',
  approval: 'AUTO',
  claimPeriod: 'ONCE',
  conditions: [],
  rewards: [{ rewardDefinitionId: '65f0000000000000000000aa', quantity: 1, stock: null }],
  createdAt: start,
  updatedAt: start,
}));

@Controller('events')
export class EventsController {
  @Get()
  list(@Headers('x-user-id') userId: string): { items: EventView[]; nextCursor: string | null; userId: string } {
    return { items: EVENTS, nextCursor: EVENTS[EVENTS.length - 1].id, userId };
  }
}
