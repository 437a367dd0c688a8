// Secret rotation with a grace period, recovery of dead deliveries, secrets at rest, and no
// secret in the log. The server runs at the most verbose log level (`--log-level trace`, see
// src/app/config.cpp), so the log checks see every line the server can write.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { BIN, OPERATOR_TOKEN, Outbound, Receiver, deliveriesTotal, eventually, seedOneTarget, serveDuring, subscribe } from './harness.mjs';

const ob = new Outbound({ args: ['--log-level', 'trace'] });
const rx = new Receiver();
let tenant, erp, targetId;
// Everything secret this file has seen (signing secrets, keys, header values): none of it may be
// in the log.
const secrets = [OPERATOR_TOKEN];

// The forms a secret could take in stored bytes: the whsec_ text, its base64 part, the decoded
// bytes, and the hex of the decoded bytes or of the text (a bytea column in a PostgreSQL dump).
function storedForms(secret) {
  if (!secret.startsWith('whsec_')) {
    return [['the text', Buffer.from(secret)], ['the text in hex', Buffer.from(Buffer.from(secret).toString('hex'))]];
  }
  const text = secret.slice(6);
  const raw = Buffer.from(text, 'base64');
  return [
    ['the whsec_ text', Buffer.from(secret)],
    ['the base64 text', Buffer.from(text)],
    ['the decoded bytes', raw],
    ['the decoded bytes in hex', Buffer.from(raw.toString('hex'))],
    ['the text in hex', Buffer.from(Buffer.from(text).toString('hex'))],
  ];
}

// What of `named` secrets appears in `bytes`, as "name: form".
function leaks(bytes, named) {
  const found = [];
  for (const [name, secret] of named) {
    for (const [form, needle] of storedForms(secret)) if (bytes.includes(needle)) found.push(`${name}: ${form}`);
  }
  return found;
}

// The bytes where the store keeps its data: SQLite, the database file and its write-ahead log
// (where recent writes are, until a checkpoint); PostgreSQL, a pg_dump of the data.
async function storedBytes() {
  if (ob.dbKind === 'sqlite') {
    const wal = existsSync(`${ob.dbPath}-wal`) ? readFileSync(`${ob.dbPath}-wal`) : Buffer.alloc(0);
    return { db: readFileSync(ob.dbPath), wal };
  }
  const { stdout } = await promisify(execFile)('pg_dump', ['--data-only', ob.dbUrl], { maxBuffer: 256 * 1024 * 1024, encoding: 'buffer' });
  return { db: stdout, wal: Buffer.alloc(0) };
}

async function subscribeTo(name) {
  const s = { ...(await subscribe(ob, erp, rx.url(`/${name}`), { eventTypes: ['appointment.started'] })), path: `/${name}` };
  secrets.push(s.secret);
  return s;
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
  secrets.push(tenant.key, erp.key);
});

test('rotate-secret: the old secret keeps signing alongside the new one', async () => {
  const sub = await subscribeTo('rotating');
  const r = await ob.call('POST', `/v1/subscriptions/${sub.id}/rotate-secret`, { token: erp.key });
  assert.equal(r.status, 200, r.text);
  assert.match(r.body.secret, /^whsec_/);
  assert.notEqual(r.body.secret, sub.secret);
  secrets.push(r.body.secret);
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
  // Neither secret in the log (at trace level; the last test checks the whole log again).
  assert.ok(!ob.log.includes(r.body.secret.slice(6)) && !ob.log.includes(sub.secret.slice(6)));
});

// Rotated again within the grace (a double click, a second thought): every secret rotated out
// in the last --secret-grace keeps signing, not only the newest one, so a receiver still on the
// first never sees a webhook it cannot verify (CONTRACT §9: the old one keeps signing alongside).
test('rotate-secret twice within the grace: all three secrets verify', async () => {
  const sub = await subscribeTo('rotating-twice');
  const first = await ob.call('POST', `/v1/subscriptions/${sub.id}/rotate-secret`, { token: erp.key });
  assert.equal(first.status, 200, first.text);
  const second = await ob.call('POST', `/v1/subscriptions/${sub.id}/rotate-secret`, { token: erp.key });
  assert.equal(second.status, 200, second.text);
  secrets.push(first.body.secret, second.body.secret);
  // As times: "…:00Z" (no milliseconds) sorts after "…:00.123Z" as text.
  assert.ok(Date.parse(second.body.previousSecretExpiresAtUtc) >= Date.parse(first.body.previousSecretExpiresAtUtc));
  await publish(1);
  await eventually(() => rx.received('/rotating-twice').length >= 1, { what: 'webhook' });
  const sig = rx.received('/rotating-twice')[0].headers['webhook-signature'];
  assert.equal(sig.split(' ').length, 3, sig);
  for (const secret of [sub.secret, first.body.secret, second.body.secret]) {
    assert.equal(rx.verify('/rotating-twice', secret).length, 1);
  }
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

// CONTRACT §6: a disabled subscription gets nothing, and re-enabling it does not send what it
// missed, "unless asked (recover)". An event published while it was disabled is kept for it as a
// cancelled delivery with no attempt; recover sends it, signed, with its eventId. Seen failing
// when fan-out skipped disabled subscriptions (recovered 0, the event never sent).
test('recover sends the events published while the subscription was disabled', async () => {
  const sub = await subscribeTo('missed');
  const since = new Date(Date.now() - 1000).toISOString();
  const off = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { enabled: false } });
  assert.equal(off.status, 200, off.text);
  const cancelledBefore = await deliveriesTotal(ob, 'cancelled');
  const missed = await publish(3);
  const v = await ob.call('GET', `/v1/events/${missed}`, { token: erp.key });
  assert.equal(v.status, 200, v.text);
  const row = v.body.deliveries?.find((d) => d.subscriptionId === sub.id);
  assert.equal(row?.status, 'cancelled', JSON.stringify(v.body.deliveries));
  assert.deepEqual(row.attempts, []);
  // Kept, not counted as a cancellation (an alert on that counter means a disable or delete).
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(await deliveriesTotal(ob, 'cancelled'), cancelledBefore);
  const on = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { enabled: true } });
  assert.equal(on.status, 200, on.text);
  // Re-enabled: nothing is sent unasked (a later event goes, the missed one does not).
  const later = await publish(4);
  await eventually(() => rx.received('/missed').length >= 1, { what: 'the later event' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(rx.verify('/missed', sub.secret).map((w) => w.payload.eventId), [later]);
  const r = await ob.call('POST', `/v1/subscriptions/${sub.id}/recover`, { token: erp.key, body: { sinceUtc: since } });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.recovered, 1);
  await eventually(() => rx.received('/missed').length >= 2, { what: 'the missed event' });
  const got = rx.verify('/missed', sub.secret);
  assert.equal(got.length, 2);
  assert.equal(got[1].payload.eventId, missed);
  assert.equal(got[1].payload.data.appointmentId, 3);
  assert.equal(got[1].headers['ordinavo-attempt'], '1');
});

// The order API.md gives for an ordered subscription: recover while it is still disabled (the
// rows wait), then enable: the missed event about the target goes out before a newer one
// published after the enable (CONTRACT §6, occurredAtUtc order).
test('an ordered subscription recovered before it is enabled keeps its target order', async () => {
  const sub = { ...(await subscribe(ob, erp, rx.url('/missed-ordered'), { eventTypes: ['appointment.started'], ordered: true })) };
  secrets.push(sub.secret);
  const since = new Date(Date.now() - 1000).toISOString();
  const off = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { enabled: false } });
  assert.equal(off.status, 200, off.text);
  const missed = await publish(5);
  const r = await ob.call('POST', `/v1/subscriptions/${sub.id}/recover`, { token: erp.key, body: { sinceUtc: since } });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.recovered, 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(rx.received('/missed-ordered').length, 0, 'nothing while disabled');
  const on = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { enabled: true } });
  assert.equal(on.status, 200, on.text);
  const newer = await publish(6);
  await eventually(() => rx.received('/missed-ordered').length >= 2, { what: 'both events' });
  assert.deepEqual(rx.verify('/missed-ordered', sub.secret).map((w) => w.payload.eventId), [missed, newer]);
});

// The scan is checked by positive controls: the same bytes do contain the subscription's URL (in
// clear, by design), so they are the rows the secrets are in. The rotated-out secret is checked
// too, and a header value. Seen failing on both backends (the whsec_ and base64 text of both
// secrets and the header value found) with core::SecretBox::Seal also keeping the plaintext.
test('secrets are encrypted at rest (the current and the rotated-out secret, headers); a wrong key is a clear start-up error', async () => {
  const HEADER_VALUE = 'Bearer MARKER-HEADER-VALUE-9c1e55aa';
  const url = rx.url('/at-rest-marker-url');
  const created = await ob.call('POST', '/v1/subscriptions', {
    token: erp.key,
    body: { url, eventTypes: ['appointment.started'], headers: { authorization: HEADER_VALUE } },
  });
  assert.equal(created.status, 201, created.text);
  const rotated = await ob.call('POST', `/v1/subscriptions/${created.body.subscriptionId}/rotate-secret`, { token: erp.key });
  assert.equal(rotated.status, 200, rotated.text);
  secrets.push(created.body.secret, rotated.body.secret, HEADER_VALUE);
  const named = [
    ['rotated-out secret', created.body.secret],
    ['current secret', rotated.body.secret],
    ['header value', HEADER_VALUE],
  ];
  // The control can find what is there: the scan would see a secret stored in clear.
  const planted = Buffer.concat([Buffer.from('xx'), Buffer.from(created.body.secret.slice(6), 'base64'), Buffer.from('yy')]);
  assert.deepEqual(leaks(planted, named.slice(0, 1)), ['rotated-out secret: the decoded bytes']);

  // While the server runs (recent writes in the WAL), and after it stopped.
  const running = await storedBytes();
  const all = Buffer.concat([running.db, running.wal]);
  assert.ok(all.includes(Buffer.from(url)), 'positive control: the subscription row is not in the scanned bytes');
  assert.deepEqual(leaks(all, named), [], 'stored in clear while running');
  console.log(`at rest (${ob.dbKind}, running): ${running.db.length} + ${running.wal.length} (WAL) bytes scanned; the URL in ${[running.db.includes(Buffer.from(url)) && 'the database', running.wal.includes(Buffer.from(url)) && 'the WAL'].filter(Boolean).join(' and ')}`);
  await ob.stop();
  if (ob.dbKind === 'sqlite') {
    const key = `${ob.dbPath}.key`;
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const stopped = await storedBytes();
    const bytes = Buffer.concat([stopped.db, stopped.wal]);
    assert.ok(bytes.includes(Buffer.from(url)), 'positive control after the stop');
    assert.deepEqual(leaks(bytes, named), [], 'stored in clear after the stop');
  }
  const wrong = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', ob.dbUrl, '--secrets-key', 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='], { timeout: 15000, encoding: 'utf8' });
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /secrets key/i);
  await ob.start();
});

// Runs last: the whole log of the server, written at trace level (every request line included),
// holds none of the secrets, keys or header values this file used. The control: debug lines and
// request lines are there (seen failing with the server at the default level, info).
test('no secret, key or header value in the log at --log-level trace', () => {
  assert.match(ob.log, / debug /, 'the log is not at debug/trace level');
  assert.match(ob.log, /POST \/v1\/subscriptions/, 'request lines are logged at this level');
  const found = secrets.filter((x) => ob.log.includes(x.startsWith('whsec_') ? x.slice(6) : x));
  assert.deepEqual(found.map((x) => `${x.slice(0, 10)}…`), []);
});
