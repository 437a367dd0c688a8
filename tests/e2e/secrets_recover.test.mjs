// Secret rotation with a grace period, recovery of dead deliveries, and secrets at rest.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { BIN, Outbound, Receiver, eventually, seedOneTarget, serveDuring, subscribe } from './harness.mjs';

const ob = new Outbound();
const rx = new Receiver();
let tenant, erp, targetId;

async function subscribeTo(name) {
  return { ...(await subscribe(ob, erp, rx.url(`/${name}`), { eventTypes: ['appointment.started'] })), path: `/${name}` };
}

async function publish(n) {
  const r = await ob.call('POST', '/v1/events', {
    token: tenant.key,
    body: { eventType: 'appointment.started', targetId, occurredAtUtc: '2026-06-25T14:02:00Z', data: { appointmentId: n, startedAtUtc: '2026-06-25T14:02:00Z' } },
  });
  assert.equal(r.status, 202, r.text);
  return r.body.eventId;
}

serveDuring(ob, rx, async () => {
  ({ tenant, erp, targetId } = await seedOneTarget(ob));
});

test('rotate-secret: the old secret keeps signing alongside the new one', async () => {
  const sub = await subscribeTo('rotating');
  const r = await ob.call('POST', `/v1/subscriptions/${sub.id}/rotate-secret`, { token: erp.key });
  assert.equal(r.status, 200, r.text);
  assert.match(r.body.secret, /^whsec_/);
  assert.notEqual(r.body.secret, sub.secret);
  assert.ok(r.body.previousSecretExpiresAtUtc);
  const g = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
  assert.ok(!('secret' in g.body), 'shown once');
  await publish(1);
  await eventually(() => rx.received('/rotating').length >= 1, { what: 'webhook' });
  const sig = rx.received('/rotating')[0].headers['webhook-signature'];
  assert.equal(sig.split(' ').length, 2, sig);
  // Both the new and the old secret verify with the public library.
  assert.equal(rx.verify('/rotating', r.body.secret).length, 1);
  assert.equal(rx.verify('/rotating', sub.secret).length, 1);
  // Neither secret in the log.
  assert.ok(!ob.log.includes(r.body.secret.slice(6)) && !ob.log.includes(sub.secret.slice(6)));
});

test('recover re-queues dead deliveries since a time, with the same eventId', async () => {
  const sub = await subscribeTo('recovering');
  rx.script('/recovering', [500, 500, 500]);
  const since = new Date(Date.now() - 1000).toISOString();
  const eventId = await publish(2);
  await eventually(async () => {
    const v = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
    return v.body.deliveries?.find((d) => d.subscriptionId === sub.id)?.status === 'dead';
  }, { what: 'dead' });
  const bad = await ob.call('POST', `/v1/subscriptions/${sub.id}/recover`, { token: erp.key, body: { sinceUtc: '2026-01-01T00:00:00' } });
  assert.equal(bad.status, 422, bad.text);
  const r = await ob.call('POST', `/v1/subscriptions/${sub.id}/recover`, { token: erp.key, body: { sinceUtc: since } });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.recovered, 1);
  await eventually(() => rx.received('/recovering').length >= 4, { what: 'recovered attempt' });
  const got = rx.verify('/recovering', sub.secret);
  assert.equal(got[3].payload.eventId, eventId);
  assert.equal(got[3].headers['ordinavo-attempt'], '4');
  assert.equal(new Set(got.map((w) => w.payload.deliveryId)).size, 4);
});

test('secrets are encrypted at rest; a wrong key is a clear start-up error', async () => {
  const sub = await subscribeTo('at-rest');
  await ob.stop();
  // The key file and the database files are SQLite's (PostgreSQL: --secrets-key, no files here).
  if (ob.dbKind === 'sqlite') {
    const key = `${ob.dbPath}.key`;
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const db = readFileSync(ob.dbPath).toString('latin1') + readFileSync(`${ob.dbPath}-wal`, { flag: 'a+' }).toString('latin1');
    assert.ok(!db.includes(sub.secret.slice(6)), 'signing secret stored in clear');
  }
  const wrong = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', ob.dbUrl, '--secrets-key', 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='], { timeout: 15000, encoding: 'utf8' });
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /secrets key/i);
  await ob.start();
});
