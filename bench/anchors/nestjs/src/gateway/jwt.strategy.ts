// The gateway's JWT guard, as the NestJS docs' passport recipe writes it: HS256 bearer tokens
// signed with JWT_SECRET, expiry enforced; the payload becomes request.user.
import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';

export interface Caller {
  userId: string;
  username: string;
  roles: string[];
}

@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy) {
  constructor() {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      ignoreExpiration: false,
      secretOrKey: process.env.JWT_SECRET as string,
      algorithms: ['HS256'],
    });
  }

  validate(payload: { sub: string; username: string; roles?: string[] }): Caller {
    return { userId: payload.sub, username: payload.username, roles: payload.roles ?? ['USER'] };
  }
}
