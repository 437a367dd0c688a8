// Retries, dead deliveries and redelivery against a real receiver (short schedule, no jitter:
// 0s, 200ms, 200ms).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outbound, Receiver, eventually, seedOneTarget, serveDuring, subscribe } from './harness.mjs';

const ob = new Outbound();
const rx = new Receiver();
let tenant, erp, targetId;

async function subscribeTo(name) {
  return { ...(await subscribe(ob, erp, rx.url(`/${name}`))), path: `/${name}` };
}

async function publish(data = { appointmentId: 1, startedAtUtc: '2026-06-25T14:02:00Z' }) {
  const r = await ob.call('POST', '/v1/events', {
    token: tenant.key,
    body: { eventType: 'appointment.started', targetId, occurredAtUtc: '2026-06-25T14:02:00Z', data },
  });
  assert.equal(r.status, 202, r.text);
  return r.body.eventId;
}

serveDuring(ob, rx, async () => {
  ({ tenant, erp, targetId } = await seedOneTarget(ob));
});

test('a receiver that fails twice then succeeds: three attempts, one eventId, three deliveryIds', async () => {
  const sub = await subscribeTo('flaky');
  rx.script('/flaky', [500, 503]);
  const eventId = await publish();
  await eventually(() => rx.received('/flaky').length >= 3, { what: 'three attempts' });
  const got = rx.verify('/flaky', sub.secret);
  assert.equal(got.length, 3);
  assert.deepEqual(got.map((w) => w.payload.eventId), [eventId, eventId, eventId]);
  assert.equal(new Set(got.map((w) => w.payload.deliveryId)).size, 3);
  assert.deepEqual(got.map((w) => w.headers['ordinavo-attempt']), ['1', '2', '3']);
  assert.deepEqual(got.map((w) => w.headers['webhook-id']), [eventId, eventId, eventId]);
  // Every attempt sends the same data.
  assert.equal(new Set(got.map((w) => JSON.stringify(w.payload.data))).size, 1);

  const view = await eventually(async () => {
    const r = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
    return r.body.deliveries?.[0]?.status === 'succeeded' && r.body;
  }, { what: 'succeeded status' });
  const attempts = view.deliveries[0].attempts;
  assert.deepEqual(attempts.map((a) => a.httpStatus), [500, 503, 200]);
  assert.deepEqual(attempts.map((a) => a.attempt), [1, 2, 3]);
  assert.deepEqual(attempts.map((a) => a.deliveryId), got.map((w) => w.payload.deliveryId));
  assert.ok(attempts[0].responseSnippet.includes('scripted 500'));

  const log = await ob.call('GET', `/v1/subscriptions/${sub.id}/deliveries`, { token: erp.key });
  assert.deepEqual(log.body.data.map((a) => a.attempt), [3, 2, 1], 'newest first');
  assert.ok(log.body.data.every((a) => a.eventId === eventId && a.status === 'succeeded'));
  const failedOnly = await ob.call('GET', `/v1/subscriptions/${sub.id}/deliveries?status=failed`, { token: erp.key });
  assert.equal(failedOnly.body.data.length, 0);
});

test('an exhausted schedule is dead; redeliver sends again with the same eventId', async () => {
  const sub = await subscribeTo('down');
  rx.script('/down', [500, 500, 500]);
  const eventId = await publish({ appointmentId: 2, startedAtUtc: '2026-06-25T15:00:00Z' });
  const view = await eventually(async () => {
    const r = await ob.call('GET', `/v1/events/${eventId}`, { token: tenant.key });
    const d = r.body.deliveries?.find((x) => x.subscriptionId === sub.id);
    return d?.status === 'dead' && d;
  }, { what: 'dead delivery' });
  assert.equal(view.attempts.length, 3);
  assert.equal(view.nextAttemptAtUtc, null);

  const r = await ob.call('POST', `/v1/events/${eventId}/redeliver`, { token: erp.key, body: { subscriptionId: sub.id } });
  assert.equal(r.status, 202, r.text);
  await eventually(() => rx.received('/down').length >= 4, { what: 'redelivery' });
  const got = rx.verify('/down', sub.secret);
  assert.equal(got[3].payload.eventId, eventId);
  assert.equal(got[3].headers['ordinavo-attempt'], '4');
  assert.equal(new Set(got.map((w) => w.payload.deliveryId)).size, 4);
  await eventually(async () => {
    const v = await ob.call('GET', `/v1/events/${eventId}`, { token: tenant.key });
    return v.body.deliveries.find((x) => x.subscriptionId === sub.id).status === 'succeeded';
  }, { what: 'succeeded after redeliver' });
});

test('a restart keeps every accepted event and what was delivered', async () => {
  const sub = await subscribeTo('restart');
  rx.script('/restart', [500]); // the first attempt fails, the retry comes after the restart
  const eventId = await publish({ appointmentId: 3, startedAtUtc: '2026-06-25T16:00:00Z' });
  await eventually(() => rx.received('/restart').length >= 1, { what: 'first attempt' });
  await ob.stop();
  await ob.start();
  await eventually(() => rx.received('/restart').length >= 2, { what: 'retry after restart' });
  const got = rx.verify('/restart', sub.secret);
  assert.equal(got.at(-1).payload.eventId, eventId);
  const r = await ob.call('GET', `/v1/events/${eventId}`, { token: tenant.key });
  assert.equal(r.status, 200);
});
