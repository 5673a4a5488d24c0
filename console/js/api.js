// api.js - the one way the console talks to the platform: same-origin calls to /api/v1 with the
// signed-in account's bearer token. The tokens live in this module's memory only (never in a URL,
// storage or a log): a reload signs out. An access token about to expire, or refused with 401, is
// renewed once through POST /auth/refresh (which rotates the refresh token).

const BASE = '/api/v1';
const RENEW_BEFORE_MS = 30000;

let session = null; // {accessToken, refreshToken, expiresAt, user: {id, username, roles}}
let renewing = null;
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message, details, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
    this.requestId = requestId;
  }
}

export function onSessionChange(fn) {
  listeners.add(fn);
}

// fn(session, why, detail): why is signin, refresh, signout, expired (detail: the refresh's
// ApiError) or not-staff.
function setSession(s, why, detail) {
  session = s;
  for (const fn of listeners) fn(session, why, detail);
}

export function currentUser() {
  return session ? session.user : null;
}

export function hasRole(...roles) {
  return !!session && session.user.roles.some((r) => roles.includes(r));
}

function adopt(body) {
  return {
    accessToken: body.accessToken,
    refreshToken: body.refreshToken,
    expiresAt: Date.now() + body.expiresIn * 1000,
    user: body.user,
  };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function send(method, path, { body, params, token, headers } = {}) {
  const h = { Accept: 'application/json', ...(headers || {}) };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(BASE + path + query(params), {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK_ERROR', `the platform could not be reached (${e.message})`, [], null);
  }
  return res;
}

async function fail(res) {
  const rid = res.headers.get('X-Request-Id');
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    body = null;
  }
  const err = body && body.error;
  if (err) return new ApiError(res.status, err.code, err.message, err.details, body.requestId || rid);
  return new ApiError(res.status, `HTTP_${res.status}`, res.statusText || 'unexpected answer', [], rid);
}

// Signs in; an account that allowed(user) refuses is signed out again at once (its fresh tokens
// revoked) and never becomes the session. Resolves with the user, or null when refused.
export async function signIn(username, password, allowed) {
  const res = await send('POST', '/auth/login', { body: { username, password } });
  if (!res.ok) throw await fail(res);
  const s = adopt(await res.json());
  if (allowed && !allowed(s.user)) {
    await revoke(s);
    setSession(null, 'not-staff');
    return null;
  }
  setSession(s, 'signin');
  return s.user;
}

async function revoke(s) {
  // best effort: the server forgets the refresh family and this access token
  try {
    await send('POST', '/auth/logout', { body: { refreshToken: s.refreshToken }, token: s.accessToken });
  } catch (e) {
    /* signed out here either way */
  }
}

export async function signOut(why = 'signout') {
  const s = session;
  setSession(null, why);
  if (s) await revoke(s);
}

function renew() {
  if (!renewing) {
    const s = session;
    renewing = (async () => {
      const res = await send('POST', '/auth/refresh', { body: { refreshToken: s.refreshToken } });
      if (!res.ok) {
        const err = await fail(res);
        if (session === s) setSession(null, 'expired', err);
        throw err;
      }
      const next = adopt(await res.json());
      if (session === s) setSession(next, 'refresh');
      return next;
    })().finally(() => {
      renewing = null;
    });
  }
  return renewing;
}

// Calls the API; resolves with the parsed JSON (or the Response itself with {raw: true}),
// rejects with an ApiError carrying the API's code, message, details and request id.
export async function api(method, path, opts = {}) {
  if (!session) throw new ApiError(401, 'NOT_SIGNED_IN', 'sign in first', [], null);
  if (session.expiresAt - Date.now() < RENEW_BEFORE_MS) await renew();
  let res = await send(method, path, { ...opts, token: session.accessToken });
  if (res.status === 401 && session) {
    await renew();
    res = await send(method, path, { ...opts, token: session.accessToken });
  }
  if (!res.ok) throw await fail(res);
  if (opts.raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

export const get = (path, params) => api('GET', path, { params });
export const post = (path, body, params) => api('POST', path, { body, params });
export const patch = (path, body) => api('PATCH', path, { body });
export const put = (path, body) => api('PUT', path, { body });
export const del = (path) => api('DELETE', path);
