// dashboard.js - what needs attention: active and upcoming events, pending reviews, grants and
// failures over the last 24 hours (a small chart), batches still running.
import { get } from '../api.js';
import { h, clear, svg, fmtTime, errorBox } from '../dom.js';
import { badge, canWrite } from './common.js';

const HOUR = 3600000;
const CHART_MAX_PAGES = 20; // 2,000 requests: the chart says "at least" beyond that

async function safe(p) {
  try {
    return await p;
  } catch (err) {
    return { error: err };
  }
}

export async function render(root) {
  const now = Date.now();
  clear(root, h('h1', null, 'Dashboard'), h('p', { class: 'muted' }, 'Loading…'));
  const [active, upcoming, reviews, batches, recent] = await Promise.all([
    safe(get('/events', { status: 'ACTIVE', limit: 100 })),
    safe(get('/events', { status: 'UPCOMING', limit: 100 })),
    safe(get('/events/reward-requests', { status: 'AWAITING_REVIEW', limit: 100 })),
    safe(get('/events/batches', { limit: 10 }).then((p) => Promise.all(p.items.map((b) => get(`/events/batches/${b.id}`))))),
    safe(lastDay(now)),
  ]);
  const tiles = h('div', { class: 'tiles' },
    tile('Active events', active, (p) => count(p), '#/events?status=ACTIVE'),
    tile('Upcoming events', upcoming, (p) => count(p), '#/events?status=UPCOMING'),
    tile('Pending reviews', reviews, (p) => count(p), '#/reviews'),
    tile('Running batches', batches, (p) => String(p.filter((b) => b.status === 'RUNNING').length), '#/batches'));
  const lists = h('div', { class: 'two' },
    eventList('Active now', active), eventList('Coming up', upcoming));
  clear(root, h('h1', null, 'Dashboard'), tiles, chart(recent, now), lists, runningBatches(batches));
}

function count(p) {
  return `${p.items.length}${p.nextCursor ? '+' : ''}`;
}

function tile(label, data, value, href) {
  return h('a', { class: 'tile', href },
    h('span', { class: 'tile-value' }, data.error ? '!' : value(data)), h('span', { class: 'tile-label' }, label),
    data.error ? h('span', { class: 'tile-error' }, data.error.code) : null);
}

async function lastDay(now) {
  const items = [];
  let cursor = null;
  let truncated = false;
  for (let i = 0; i < CHART_MAX_PAGES; i++) {
    const p = await get('/events/reward-requests', { from: new Date(now - 24 * HOUR).toISOString(), cursor, limit: 100 });
    items.push(...p.items);
    if (!p.nextCursor) return { items, truncated };
    cursor = p.nextCursor;
  }
  truncated = true;
  return { items, truncated };
}

function chart(recent, now) {
  const box = h('section', { class: 'panel', 'aria-labelledby': 'chart-title' }, h('h2', { id: 'chart-title' }, 'Grants and failures, last 24 hours'));
  if (recent.error) return box.appendChild(errorBox(recent.error)) && box;
  const ok = new Array(24).fill(0);
  const bad = new Array(24).fill(0);
  for (const r of recent.items) {
    const at = Date.parse(r.processedAt || r.requestedAt);
    const slot = 23 - Math.floor((now - at) / HOUR);
    if (slot < 0 || slot > 23) continue;
    if (r.status === 'SUCCESS' || r.status === 'REVOKED') ok[slot] += 1;
    else if (r.status === 'FAILED') bad[slot] += 1;
  }
  const top = Math.max(1, ...ok.map((v, i) => v + bad[i]));
  const W = 480;
  const H = 120;
  const bw = W / 24;
  const bars = [];
  for (let i = 0; i < 24; i++) {
    const hOk = (ok[i] / top) * (H - 10);
    const hBad = (bad[i] / top) * (H - 10);
    const hour = new Date(now - (23 - i) * HOUR).toISOString().slice(11, 13);
    bars.push(svg('g', null,
      svg('title', null, `${hour}:00 UTC hour: ${ok[i]} granted, ${bad[i]} failed`),
      svg('rect', { x: i * bw + 1, y: H - hOk, width: bw - 2, height: hOk, class: 'bar-ok' }),
      svg('rect', { x: i * bw + 1, y: H - hOk - hBad, width: bw - 2, height: hBad, class: 'bar-bad' })));
  }
  const axis = [0, 6, 12, 18, 23].map((i) => svg('text', {
    x: i === 0 ? 1 : i === 23 ? W - 1 : i * bw, y: H + 14, class: 'axis',
    'text-anchor': i === 0 ? 'start' : i === 23 ? 'end' : 'middle',
  }, i === 23 ? 'now' : `−${24 - i} h`));
  axis.push(svg('text', { x: 2, y: 12, class: 'axis' }, String(top)));
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  const text = `${sum(ok)}${recent.truncated ? '+' : ''} granted, ${sum(bad)} failed in the last 24 hours`;
  box.append(
    svg('svg', { viewBox: `0 0 ${W} ${H + 20}`, class: 'chart', role: 'img', 'aria-label': text }, bars, axis),
    h('p', { id: 'chart-summary' }, h('span', { class: 'key key-ok' }, ''), ' granted ', h('span', { class: 'key key-bad' }, ''),
      ' failed · ', text, '.'));
  return box;
}

function eventList(title, data) {
  return h('section', { class: 'panel' }, h('h2', null, title),
    data.error ? errorBox(data.error)
      : data.items.length ? h('ul', { class: 'plain' }, data.items.slice(0, 10).map((e) =>
        h('li', null, canWrite() ? h('a', { href: `#/events/${e.id}/edit` }, e.title) : e.title, ' ', badge(e.status),
          ` ${fmtTime(e.startDate)} → ${fmtTime(e.endDate)}`)))
        : h('p', { class: 'muted' }, 'None.'));
}

function runningBatches(data) {
  const box = h('section', { class: 'panel' }, h('h2', null, 'Running batches'));
  if (data.error) return box.appendChild(errorBox(data.error)) && box;
  const running = data.filter((b) => b.status === 'RUNNING');
  if (!running.length) box.append(h('p', { class: 'muted' }, 'None.'));
  for (const b of running) {
    const settled = b.counts.SUCCESS + b.counts.FAILED;
    box.append(h('p', null, h('a', { href: `#/batches/${b.id}` }, b.reason), ' ',
      h('progress', { max: b.total || 1, value: settled }, `${settled}/${b.total}`), ` ${settled} of ${b.total}`));
  }
  return box;
}
