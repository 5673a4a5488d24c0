// validate.js - the checks the server makes on event and reward-definition bodies (schemas/ and
// workers/event/event.c), made before sending so a form says what is wrong at once. Each returns
// the server's own shape: [{field: JSON pointer, reason}]. The server stays the judge: what it
// refuses beyond these (an inactive definition, a frozen field) is shown the same way.

export const CONDITION_TYPES = ['LEVEL_ACHIEVE', 'LOGIN_STREAK', 'LOGIN_DAYS', 'QUEST_COMPLETE', 'INVITE_FRIENDS', 'COUNTER'];
export const DEFINITION_TYPES = ['CURRENCY', 'ITEM', 'BUFF', 'COUPON', 'POINT'];
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const HEX24 = /^[0-9a-fA-F]{24}$/;
const COUNTER_KEY = /^[A-Za-z0-9_.:-]{1,64}$/;

const isInt = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
const strLen = (s) => new TextEncoder().encode(s).length;

export function parseTime(s) {
  if (typeof s !== 'string' || !RFC3339.test(s)) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

function conditionValueError(type, value) {
  switch (type) {
    case 'LOGIN_STREAK':
    case 'LOGIN_DAYS':
      return isInt(value, 1, 3660) ? null : 'must be an integer number of days from 1 to 3660';
    case 'LEVEL_ACHIEVE':
      return isInt(value, 1, 100000) ? null : 'must be an integer level from 1 to 100000';
    case 'INVITE_FRIENDS':
      return isInt(value, 1, 100000) ? null : 'must be an integer count from 1 to 100000';
    case 'QUEST_COMPLETE':
      return typeof value === 'string' && value.length >= 1 && value.length <= 128
        ? null : 'must be a quest id string of 1 to 128 characters';
    case 'COUNTER':
      return value && typeof value === 'object' && !Array.isArray(value) && typeof value.key === 'string'
        && COUNTER_KEY.test(value.key) && Number.isInteger(value.min)
        ? null : 'must be {key: 1-64 chars of [A-Za-z0-9_.:-], min: integer}';
    default:
      return null;
  }
}

// body: an event as sent (create, or a whole update).
export function validateEvent(body) {
  const d = [];
  const add = (field, reason) => d.push({ field, reason });
  if (typeof body.title !== 'string' || body.title.length < 1 || body.title.length > 200)
    add('/title', 'must be a string of 1 to 200 characters');
  if (body.description !== undefined && (typeof body.description !== 'string' || body.description.length > 5000))
    add('/description', 'must be a string of at most 5000 characters');
  const s = parseTime(body.startDate);
  const e = parseTime(body.endDate);
  if (s === null) add('/startDate', 'must be an ISO-8601 date-time with a zone');
  if (e === null) add('/endDate', 'must be an ISO-8601 date-time with a zone');
  if (s !== null && e !== null && e <= s) add('/endDate', 'must be after startDate');
  if (s !== null && e !== null && e - s > 3660 * 86400000) add('/endDate', 'an event lasts at most 10 years');
  const conds = body.conditions || [];
  if (conds.length > 20) add('/conditions', 'at most 20 conditions');
  conds.forEach((c, i) => {
    if (!CONDITION_TYPES.includes(c.type)) add(`/conditions/${i}/type`, `must be one of ${CONDITION_TYPES.join(', ')}`);
    else {
      const why = conditionValueError(c.type, c.value);
      if (why) add(`/conditions/${i}/value`, why);
    }
    if (c.description !== undefined && (typeof c.description !== 'string' || c.description.length > 500))
      add(`/conditions/${i}/description`, 'must be a string of at most 500 characters');
  });
  const rewards = body.rewards || [];
  if (rewards.length < 1 || rewards.length > 20) add('/rewards', 'must be an array of 1 to 20 rewards');
  rewards.forEach((r, i) => {
    if (!HEX24.test(r.rewardDefinitionId || '')) add(`/rewards/${i}/rewardDefinitionId`, 'choose a reward definition');
    if (!isInt(r.quantity, 1, 1000000)) add(`/rewards/${i}/quantity`, 'must be an integer from 1 to 1000000');
    if (r.stock !== null && r.stock !== undefined && !isInt(r.stock, 0, 1000000000))
      add(`/rewards/${i}/stock`, 'must be null (unlimited) or an integer from 0 to 1000000000');
  });
  if (body.maxClaims !== null && body.maxClaims !== undefined && !isInt(body.maxClaims, 1, 1000000))
    add('/maxClaims', 'must be null (unlimited) or an integer from 1 to 1000000');
  if (body.dayOffsetMinutes !== undefined && !isInt(body.dayOffsetMinutes, -720, 840))
    add('/dayOffsetMinutes', 'must be an integer from -720 to 840');
  return d;
}

export function validateDefinition(body) {
  const d = [];
  if (typeof body.name !== 'string' || body.name.length < 1 || body.name.length > 100)
    d.push({ field: '/name', reason: 'must be a string of 1 to 100 characters' });
  if (!DEFINITION_TYPES.includes(body.type))
    d.push({ field: '/type', reason: `must be one of ${DEFINITION_TYPES.join(', ')}` });
  if (body.value === undefined) d.push({ field: '/value', reason: 'is required' });
  else if (strLen(JSON.stringify(body.value)) > 4096) d.push({ field: '/value', reason: 'must encode to at most 4096 bytes' });
  if (body.description !== undefined && body.description.length > 1000)
    d.push({ field: '/description', reason: 'must be a string of at most 1000 characters' });
  return d;
}

// "" -> undefined (left out), "12" -> 12, "x" -> NaN (refused by the range checks)
export function intOrBlank(text) {
  const t = text.trim();
  if (t === '') return undefined;
  return /^-?\d+$/.test(t) ? Number(t) : NaN;
}
