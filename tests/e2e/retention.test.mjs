// Retention (CONTRACT §13) with `--retention 2s`: events accepted longer ago than that are
// deleted with their deliveries and attempts once none of those is pending or failed; an event
// with a failed delivery (next attempt in an hour) is kept until it is finished (here: its
// subscription is disabled, which cancels it). On SQLite, the space of deleted rows is reused:
// the database file does not grow over repeated fill/delete cycles.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { Outbound, Receiver, eventually, seedOneTarget, serveDuring, sleep, subscribe } from './harness.mjs';

// Two attempts: now, and in an hour (a failed delivery stays open for the whole test).
const ob = new Outbound({ args: ['--retention', '2s'], retrySchedule: '0s,1h' });
const rx = new Receiver();
let mixed; // a tenant whose events go to an endpoint that answers 200 and one that answers 500
let plain; // a tenant whose events go to an endpoint that answers 200

serveDuring(ob, rx, async () => {
  mixed = await seedOneTarget(ob);
  mixed.ok = await subscribe(ob, mixed.erp, rx.url('/mixed-ok'));
  mixed.down = await subscribe(ob, mixed.erp, rx.url('/mixed-down'));
  rx.decide('/mixed-down', () => 500);
  plain = await seedOneTarget(ob);
  plain.ok = await subscribe(ob, plain.erp, rx.url('/plain-ok'));
});

async function publish(t, n = 1) {
  const r = await ob.call('POST', '/v1/events', {
    token: t.tenant.key,
    body: { eventType: 'appointment.started', targetId: t.targetId, occurredAtUtc: '2020-01-01T00:00:00Z', data: { appointmentId: n, startedAtUtc: '2020-01-01T00:00:00Z' } },
  });
  assert.equal(r.status, 202, r.text);
  return r.body.eventId;
}

async function status(t, eventId) {
  return (await ob.call('GET', `/v1/events/${eventId}`, { token: t.tenant.key })).status;
}

test('finished events go after the retention; an event with a failed delivery stays until it is finished', async () => {
  const open = await publish(mixed);
  const finished = await publish(plain);
  // Both attempts of `open` were made: one succeeded, one failed (next attempt in an hour).
  await eventually(async () => {
    const r = await ob.call('GET', `/v1/events/${open}`, { token: mixed.tenant.key });
    const s = r.body.deliveries?.map((d) => d.status).sort().join(',');
    return s === 'failed,succeeded';
  }, { what: 'one succeeded and one failed delivery' });
  // occurredAtUtc is years old, but the time that counts is acceptance: right after it, both
  // are still there.
  assert.equal(await status(plain, finished), 200);

  await eventually(async () => (await status(plain, finished)) === 404, { timeoutMs: 30000, what: 'the finished event deleted' });
  // The pass that deleted it looked at the older `open` too, and kept it.
  const kept = await ob.call('GET', `/v1/events/${open}`, { token: mixed.tenant.key });
  assert.equal(kept.status, 200, kept.text);
  assert.equal(kept.body.deliveries.length, 2, 'with both of its deliveries');
  assert.ok(kept.body.deliveries.every((d) => d.attempts.length === 1), 'and their attempts');
  const log = await ob.call('GET', `/v1/subscriptions/${plain.ok.id}/deliveries`, { token: plain.erp.key });
  assert.equal(log.status, 200);
  assert.ok(!log.body.data.some((a) => a.eventId === finished), 'the deleted event\'s attempts are gone from the delivery log');

  // Disabling the failing subscription cancels its delivery: the event is finished now, and goes.
  const p = await ob.call('PATCH', `/v1/subscriptions/${mixed.down.id}`, { token: mixed.erp.key, body: { enabled: false } });
  assert.equal(p.status, 200, p.text);
  await eventually(async () => (await status(mixed, open)) === 404, { timeoutMs: 30000, what: 'the cancelled event deleted' });
});

test('SQLite: the file does not grow over repeated fill/delete cycles', { skip: ob.dbKind !== 'sqlite' && 'SQLite file sizes' }, async () => {
  const perCycle = 400;
  const sizes = [];
  const base = statSync(ob.dbPath).size;
  for (let cycle = 0; cycle < 4; cycle++) {
    const ids = [];
    for (let i = 0; i < perCycle; i += 20) {
      ids.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => publish(plain, cycle * perCycle + i + j + 1)))));
    }
    // Every one delivered, then deleted: the tenant has no events left.
    await eventually(async () => {
      const r = await ob.call('GET', '/v1/events?limit=1', { token: plain.tenant.key });
      return r.status === 200 && r.body.data.length === 0;
    }, { timeoutMs: 90000, intervalMs: 250, what: `cycle ${cycle}: every event delivered and deleted` });
    assert.equal(await status(plain, ids[0]), 404);
    // The checkpointer copies the WAL into the file about every second.
    await sleep(2500);
    sizes.push(statSync(ob.dbPath).size);
  }
  console.log(`database file: ${base} bytes empty, after each cycle of ${perCycle} events: ${sizes.join(', ')}`);
  console.log(`retention passes: ${ob.log.split('\n').filter((l) => /retention: deleted/.test(l)).join(' | ')}`);
  assert.ok(sizes[0] > base + 100 * 1024, `a cycle's rows took room in the file (${base} → ${sizes[0]})`);
  // Without reuse every cycle would add about as much as the first.
  const firstGrowth = sizes[0] - base;
  assert.ok(sizes[3] - sizes[0] < firstGrowth / 2, `the later cycles reused the space: ${sizes.join(', ')}`);
});
