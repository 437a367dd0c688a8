// CONTRACT §13 surfaces (part a): POST /v1/events/batch, the directory lists with lookup by
// external id, 409 in_use on deleting a directory record still referred to, and a subscription's
// `backlog` and `paused`. Against the real binary, a real receiver on 127.0.0.1 and the public
// Standard Webhooks verifier; on SQLite (e2e.surfaces_a) and PostgreSQL (e2e_pg.surfaces_a).
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { Outbound, Receiver, assertError, createClient, createTenant, eventually, serveDuring, sleep, subscribe } from './harness.mjs';

// A single request may be at most 64 KiB here; a batch may still be up to 4 MiB (§13).
const ob = new Outbound({ args: ['--max-body', '65536'] });
const rx = new Receiver();
let tenant, erp;
const targets = []; // ids of imported targets T-0..T-3 (customer 1)

const started = (targetId, n) => ({
  eventType: 'appointment.started',
  targetId,
  occurredAtUtc: '2026-06-25T14:02:00Z',
  data: { appointmentId: n, startedAtUtc: '2026-06-25T14:02:00Z' },
});

// The tenant's events, counted over every page (bounded).
// Sends `head` on a fresh connection and returns all the server answers until it closes.
function rawRequest(head) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(new URL(ob.base).port), '127.0.0.1');
    let out = '';
    sock.setTimeout(10000, () => sock.destroy(new Error('no answer')));
    sock.on('connect', () => sock.write(head));
    sock.on('data', (d) => {
      out += d.toString();
    });
    sock.on('close', () => resolve(out));
    sock.on('error', (e) => (out ? resolve(out) : reject(e)));
  });
}

async function eventCount() {
  let n = 0;
  let cursor;
  for (let page = 0; page < 40; page++) {
    const r = await ob.call('GET', `/v1/events?limit=250${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: tenant.key });
    assert.equal(r.status, 200, r.text);
    n += r.body.data.length;
    cursor = r.body.nextCursor;
    if (!cursor) return n;
  }
  throw new Error('too many pages of events');
}

serveDuring(ob, rx, async () => {
  tenant = await createTenant(ob);
  erp = await createClient(ob, tenant.key, { name: 'ERP', sourceSystem: 'logistics_erp' });
  const put = async (p, body) => {
    const r = await ob.call('PUT', p, { token: tenant.key, body });
    assert.ok(r.status === 200 || r.status === 201, `${p}: ${r.text}`);
  };
  await put('/v1/customers/1', { customerNumber: 'C-1', name: 'Bakery', externalIds: { logistics_erp: 'C1', crm: 'crm-1' } });
  await put('/v1/locations/11', { customerId: 1, name: 'Shop', externalIds: { logistics_erp: 'L11' } });
  await put('/v1/contacts/21', { customerId: 1, displayName: 'Ana', externalIds: { logistics_erp: 'P21' } });
  const items = [0, 1, 2, 3].map((i) => ({ externalId: `T-${i}`, customerExternalId: 'C1', locationExternalId: 'L11', contactExternalId: 'P21', title: `T${i}` }));
  const r = await ob.call('POST', '/v1/imports/targets', { token: erp.key, body: { targets: items } });
  assert.equal(r.status, 200, r.text);
  for (const res of r.body.results) targets.push(res.targetId);
});

describe('POST /v1/events/batch', () => {
  test('valid items are stored and delivered, a bad item is refused alone, answers in order', async () => {
    const sub = await subscribe(ob, erp, rx.url('/batch'), { eventTypes: ['appointment.*'] });
    const before = await eventCount();
    const events = [
      started(targets[0], 1),
      { ...started(targets[1], 2), eventType: 'no.such_type' },
      started(999999, 3), // no such target
      'not an object',
      { ...started(targets[1], 4), extra: true },
      { eventType: 'appointment.completed', targetId: targets[1], occurredAtUtc: '2026-06-25T15:00:00Z', data: { appointmentId: 5, completedAtUtc: '2026-06-25T15:00:00Z' } },
    ];
    const r = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events } });
    assert.equal(r.status, 202, r.text);
    const res = r.body.results;
    assert.equal(res.length, events.length);
    assert.match(res[0].eventId, /^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.match(res[5].eventId, /^evt_/);
    assert.ok(!('error' in res[0]) && !('eventId' in res[1]));
    // §8 error shape; `field` relative to the item.
    for (const i of [1, 2, 3, 4]) {
      assert.equal(typeof res[i].error.code, 'string', JSON.stringify(res[i]));
      assert.equal(typeof res[i].error.message, 'string', JSON.stringify(res[i]));
    }
    assert.deepEqual(res[1].error.details.map((d) => [d.field, d.code]), [['eventType', 'unknown_event_type']]);
    assert.equal(res[2].error.code, 'target_not_found');
    assert.equal(res[2].error.field, 'targetId');
    assert.equal(res[3].error.code, 'invalid_type');
    assert.deepEqual(res[4].error.details.map((d) => [d.field, d.code]), [['extra', 'unknown_field']]);
    assert.equal(await eventCount(), before + 2);

    // Stored as a single publish stores them: readable, delivered signed, target status set.
    const got = await ob.call('GET', `/v1/events/${res[5].eventId}`, { token: tenant.key });
    assert.equal(got.status, 200, got.text);
    assert.equal(got.body.event.eventType, 'appointment.completed');
    assert.equal(got.body.event.targetId, targets[1]);
    const t1 = await ob.call('GET', `/v1/targets/${targets[1]}`, { token: tenant.key });
    assert.equal(t1.body.status, 'Completed', t1.text);
    await eventually(() => rx.received('/batch').length >= 2, { what: 'two webhooks' });
    const payloads = rx.verify('/batch', sub.secret).map((v) => v.payload);
    assert.deepEqual(payloads.map((p) => p.eventId).sort(), [res[0].eventId, res[5].eventId].sort());
    const completed = payloads.find((p) => p.eventId === res[5].eventId);
    assert.equal(completed.eventType, 'appointment.completed');
    assert.equal(completed.data.appointmentId, 5);
    assert.equal(completed.data.targetId, targets[1]);
  });

  test('202 even when every item is refused; nothing is stored', async () => {
    const before = await eventCount();
    const r = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events: [started(999998, 1), {}, 42] } });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.results.length, 3);
    for (const item of r.body.results) assert.equal(typeof item.error.code, 'string', JSON.stringify(item));
    assert.equal(await eventCount(), before);
    const empty = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events: [] } });
    assert.equal(empty.status, 202, empty.text);
    assert.deepEqual(empty.body, { results: [] });
  });

  test('request-level problems are refused whole with a clear error', async () => {
    const before = await eventCount();
    assertError(await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: [started(targets[0], 1)] }), 422, 'invalid_body');
    const notArray = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events: started(targets[0], 1) } });
    assertError(notArray, 422);
    assert.equal(notArray.body.error.details[0].field, 'events');
    const unknown = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events: [], eventz: [] } });
    assertError(unknown, 422);
    assert.equal(unknown.body.error.details[0].field, 'eventz');
    assertError(await ob.call('POST', '/v1/events/batch', { token: tenant.key, raw: '{"events": [', headers: { 'content-type': 'application/json' } }), 400);
    const tooMany = Array.from({ length: 1001 }, (_, i) => started(targets[0], i));
    const big = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events: tooMany } });
    assertError(big, 413, 'batch_too_large');
    assert.match(big.body.error.message, /1000/);
    // A client key may not publish.
    assertError(await ob.call('POST', '/v1/events/batch', { token: erp.key, body: { events: [] } }), 403, 'insufficient_scope');
    assert.equal(await eventCount(), before);
  });

  test('a batch body may be up to 4 MiB whatever the single-request limit', async () => {
    const before = await eventCount();
    // 1,000 items (the most a batch takes) with padding: about 300 KB, far above --max-body 64 KiB.
    const events = Array.from({ length: 1000 }, (_, i) => started(targets[i % 4], i + 1));
    const raw = JSON.stringify({ events }, null, 2) + ' '.repeat(100 * 1024);
    assert.ok(raw.length > 256 * 1024 && raw.length < 4 * 1024 * 1024, String(raw.length));
    const r = await ob.call('POST', '/v1/events/batch', { token: tenant.key, raw, headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 202, r.text.slice(0, 500));
    assert.equal(r.body.results.length, 1000);
    assert.ok(r.body.results.every((x) => /^evt_/.test(x.eventId)), JSON.stringify(r.body.results.find((x) => !x.eventId)));
    assert.equal(new Set(r.body.results.map((x) => x.eventId)).size, 1000);
    assert.equal(await eventCount(), before + 1000);
    // The single-request limit still holds for every other route...
    const single = JSON.stringify(started(targets[0], 1)) + ' '.repeat(70 * 1024);
    assertError(await ob.call('POST', '/v1/events', { token: tenant.key, raw: single, headers: { 'content-type': 'application/json' } }), 413, 'payload_too_large');
    // ...and a batch above 4 MiB is refused from its Content-Length, before its body is read
    // (a raw socket: the answer comes while the client has sent only the header).
    const tooBig = await rawRequest(`POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tenant.key}\r\nContent-Type: application/json\r\nContent-Length: ${4 * 1024 * 1024 + 1}\r\n\r\n`);
    assert.match(tooBig, /^HTTP\/1\.1 413 /, tooBig);
    assert.match(tooBig, /"payload_too_large"/);
    assert.match(tooBig, /4194304 bytes/);
    // A chunked batch body that grows past 4 MiB is refused too (no Content-Length to go by).
    let r2;
    try {
      const huge = JSON.stringify({ events: [] }) + ' '.repeat(4 * 1024 * 1024 + 10);
      r2 = await ob.call('POST', '/v1/events/batch', { token: tenant.key, raw: huge, headers: { 'content-type': 'application/json' } });
    } catch {
      r2 = null; // the server may close the connection after answering, before all was sent
    }
    if (r2) assertError(r2, 413, 'payload_too_large');
    assert.equal((await fetch(`${ob.base}/healthz`)).status, 200);
  });

  test('Idempotency-Key applies to the whole batch', async () => {
    const before = await eventCount();
    const body = { events: [started(targets[2], 1), started(999997, 2), started(targets[3], 3)] };
    const headers = { 'idempotency-key': `batch-${Date.now()}` };
    const first = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body, headers });
    assert.equal(first.status, 202, first.text);
    const again = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body, headers });
    assert.equal(again.status, 202, again.text);
    assert.deepEqual(again.body, first.body, 'the same answer, the same eventIds');
    assert.equal(await eventCount(), before + 2, 'stored once');
    const other = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events: [started(targets[2], 9)] }, headers });
    assertError(other, 409, 'idempotency_key_reused');
    const longKey = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body, headers: { 'idempotency-key': 'k'.repeat(256) } });
    assertError(longKey, 422, 'invalid_idempotency_key');
    assert.equal(await eventCount(), before + 2);
  });

  test('literal paths win over {eventId}: GET /v1/events/batch is 405', async () => {
    const r = await ob.call('GET', '/v1/events/batch', { token: tenant.key });
    assertError(r, 405);
    assert.equal(r.headers.get('allow'), 'POST');
    // An event id still reaches GET /v1/events/{eventId}.
    assertError(await ob.call('GET', '/v1/events/evt_01HZZZZZZZZZZZZZZZZZZZZZZZ', { token: tenant.key }), 404);
  });
});

describe('directory lists and lookup by external id', () => {
  test('GET /v1/customers, /v1/locations, /v1/contacts page by cursor in id order', async () => {
    for (const id of [5, 3, 4]) {
      const r = await ob.call('PUT', `/v1/customers/${id}`, { token: tenant.key, body: { customerNumber: `C-${id}`, name: `N${id}`, internalNotes: 'never shown', externalIds: { crm: `crm-${id}` } } });
      assert.equal(r.status, 201, r.text);
    }
    const seen = [];
    let cursor;
    for (let page = 0; page < 10; page++) {
      const r = await ob.call('GET', `/v1/customers?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: tenant.key });
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.data.length <= 2);
      seen.push(...r.body.data);
      cursor = r.body.nextCursor;
      if (!cursor) break;
    }
    assert.deepEqual(seen.map((c) => c.customerId), [1, 3, 4, 5]);
    assert.deepEqual(seen[1].externalIds, { crm: 'crm-3' });
    assert.ok(!JSON.stringify(seen).includes('never shown'), 'internalNotes are never given out');
    const locations = await ob.call('GET', '/v1/locations', { token: tenant.key });
    assert.equal(locations.status, 200, locations.text);
    assert.deepEqual(locations.body.data.map((l) => [l.locationId, l.customerId, l.name]), [[11, 1, 'Shop']]);
    const contacts = await ob.call('GET', '/v1/contacts', { token: tenant.key });
    assert.deepEqual(contacts.body.data.map((c) => [c.contactId, c.displayName]), [[21, 'Ana']]);
    assertError(await ob.call('GET', '/v1/customers?cursor=nonsense', { token: tenant.key }), 422);
    assertError(await ob.call('GET', '/v1/customers', { token: erp.key }), 403, 'insufficient_scope');
    // Another tenant sees none of them.
    const other = await createTenant(ob, 'Other');
    const none = await ob.call('GET', '/v1/customers', { token: other.key });
    assert.deepEqual(none.body.data, []);
    const lookup = await ob.call('GET', '/v1/customers?sourceSystem=logistics_erp&externalId=C1', { token: other.key });
    assert.deepEqual(lookup.body.data, []);
  });

  test('?sourceSystem=&externalId= finds the record with that external id', async () => {
    const c = await ob.call('GET', '/v1/customers?sourceSystem=crm&externalId=crm-1', { token: tenant.key });
    assert.equal(c.status, 200, c.text);
    assert.deepEqual(c.body.data.map((x) => x.customerId), [1]);
    assert.equal(c.body.nextCursor ?? null, null);
    const l = await ob.call('GET', '/v1/locations?sourceSystem=logistics_erp&externalId=L11', { token: tenant.key });
    assert.deepEqual(l.body.data.map((x) => x.locationId), [11]);
    const p = await ob.call('GET', '/v1/contacts?sourceSystem=logistics_erp&externalId=P21', { token: tenant.key });
    assert.deepEqual(p.body.data.map((x) => x.contactId), [21]);
    // An id of another kind or system is not this one.
    const wrongKind = await ob.call('GET', '/v1/contacts?sourceSystem=logistics_erp&externalId=L11', { token: tenant.key });
    assert.deepEqual(wrongKind.body.data, []);
    const missing = await ob.call('GET', '/v1/customers?sourceSystem=crm&externalId=nope', { token: tenant.key });
    assert.equal(missing.status, 200);
    assert.deepEqual(missing.body.data, []);
    // Both together, else a clear error.
    const half = await ob.call('GET', '/v1/customers?externalId=crm-1', { token: tenant.key });
    assertError(half, 422);
    assert.equal(half.body.error.details[0].field, 'sourceSystem');
    assert.match(half.body.error.details[0].message, /sourceSystem and externalId/);
    const other = await ob.call('GET', '/v1/locations?sourceSystem=crm', { token: tenant.key });
    assertError(other, 422);
    assert.equal(other.body.error.details[0].field, 'externalId');
    assertError(await ob.call('GET', '/v1/contacts?externalid=x', { token: tenant.key }), 422, 'unknown_parameter');
  });

  test('deleting a record that something still refers to is 409 in_use and changes nothing', async () => {
    const before = {
      customer: (await ob.call('GET', '/v1/customers/1', { token: tenant.key })).body,
      location: (await ob.call('GET', '/v1/locations/11', { token: tenant.key })).body,
      contact: (await ob.call('GET', '/v1/contacts/21', { token: tenant.key })).body,
    };
    const c = await ob.call('DELETE', '/v1/customers/1', { token: tenant.key });
    assertError(c, 409, 'in_use');
    assert.match(c.body.error.message, /referenced by 4 targets, 1 location and 1 contact/);
    const l = await ob.call('DELETE', '/v1/locations/11', { token: tenant.key });
    assertError(l, 409, 'in_use');
    assert.match(l.body.error.message, /4 targets/);
    assertError(await ob.call('DELETE', '/v1/contacts/21', { token: tenant.key }), 409, 'in_use');
    // A cancelled target still refers to its records.
    const cancel = await ob.call('POST', '/v1/imports/targets', {
      token: erp.key,
      body: { targets: [0, 1, 2, 3].map((i) => ({ externalId: `T-${i}`, customerExternalId: 'C1', locationExternalId: 'L11', contactExternalId: 'P21', title: `T${i}`, cancelled: true })) },
    });
    assert.equal(cancel.status, 200, cancel.text);
    assert.ok(cancel.body.results.every((x) => x.result === 'cancelled'), cancel.text);
    assertError(await ob.call('DELETE', '/v1/contacts/21', { token: tenant.key }), 409, 'in_use');
    assert.deepEqual((await ob.call('GET', '/v1/customers/1', { token: tenant.key })).body, before.customer);
    assert.deepEqual((await ob.call('GET', '/v1/locations/11', { token: tenant.key })).body, before.location);
    assert.deepEqual((await ob.call('GET', '/v1/contacts/21', { token: tenant.key })).body, before.contact);
    const found = await ob.call('GET', '/v1/customers?sourceSystem=logistics_erp&externalId=C1', { token: tenant.key });
    assert.equal(found.body.data.length, 1, 'its external ids are kept too');
    // A record nothing refers to goes.
    const spare = await ob.call('DELETE', '/v1/customers/5', { token: tenant.key });
    assert.equal(spare.status, 204, spare.text);
  });
});

describe('subscription backlog and paused', () => {
  test('paused holds deliveries without cancelling them; unpausing sends them in order', async () => {
    const sub = await subscribe(ob, erp, rx.url('/paused'), { eventTypes: ['appointment.started'], ordered: true });
    const publish = async (n) => {
      const r = await ob.call('POST', '/v1/events', { token: tenant.key, body: started(targets[0], n) });
      assert.equal(r.status, 202, r.text);
      return r.body.eventId;
    };
    // One delivery first, so that the dispatcher has the subscription cached as sendable.
    const warm = await publish(100);
    await eventually(() => rx.received('/paused').length === 1, { what: 'the first webhook' });
    let g = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
    assert.equal(g.body.paused, false);
    assert.deepEqual(g.body.backlog, { pending: 0, oldestDueAtUtc: null });

    const p = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { paused: true } });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.body.paused, true);
    assert.equal(p.body.enabled, true);
    const ids = [];
    for (let n = 1; n <= 3; n++) ids.push(await publish(n));
    const batch = await ob.call('POST', '/v1/events/batch', { token: tenant.key, body: { events: [started(targets[0], 4)] } });
    ids.push(batch.body.results[0].eventId);
    await sleep(1500);
    assert.equal(rx.received('/paused').length, 1, 'nothing is sent while paused');
    g = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
    assert.equal(g.body.paused, true);
    assert.equal(g.body.backlog.pending, 4);
    assert.ok(Date.parse(g.body.backlog.oldestDueAtUtc) <= Date.now(), g.text);
    const list = await ob.call('GET', '/v1/subscriptions', { token: erp.key });
    assert.deepEqual(list.body.data.find((s) => s.subscriptionId === sub.id).backlog, g.body.backlog);
    // Held, not cancelled (unlike enabled: false).
    const ev = await ob.call('GET', `/v1/events/${ids[0]}`, { token: erp.key });
    assert.equal(ev.body.deliveries.find((d) => d.subscriptionId === sub.id).status, 'pending');

    const u = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { paused: false } });
    assert.equal(u.status, 200, u.text);
    assert.equal(u.body.paused, false);
    await eventually(() => rx.received('/paused').length >= 5, { what: 'the held webhooks', timeoutMs: 20000 });
    const got = rx.verify('/paused', sub.secret).map((v) => v.payload.eventId);
    assert.deepEqual(got, [warm, ...ids], 'in order (ordered subscription)');
    await eventually(async () => {
      const b = (await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key })).body.backlog;
      return b.pending === 0 && b.oldestDueAtUtc === null;
    }, { what: 'an empty backlog' });
  });

  test('a pause stops what the dispatcher already holds for the subscription', async () => {
    // maxConcurrency 1 and a slow first answer: the next deliveries wait in the dispatcher's
    // queue (leased to it at fan-out) while the first is in flight. The pause must stop those
    // too, not only what is still in the database.
    const sub = await subscribe(ob, erp, rx.url('/queued'), { eventTypes: ['appointment.started'], maxConcurrency: 1 });
    rx.script('/queued', [{ status: 200, delayMs: 1500 }]);
    const ids = [];
    for (let n = 1; n <= 3; n++) {
      const r = await ob.call('POST', '/v1/events', { token: tenant.key, body: started(targets[2], 200 + n) });
      assert.equal(r.status, 202, r.text);
      ids.push(r.body.eventId);
    }
    await eventually(() => rx.received('/queued').length === 1, { what: 'the first (slow) webhook' });
    const p = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { paused: true } });
    assert.equal(p.status, 200, p.text);
    await sleep(2500); // the slow answer ends after 1.5 s; nothing may follow it
    assert.equal(rx.received('/queued').length, 1, 'nothing more is sent while paused');
    const held = (await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key })).body.backlog;
    assert.equal(held.pending, 2, JSON.stringify(held));
    const u = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { paused: false } });
    assert.equal(u.status, 200, u.text);
    await eventually(() => rx.received('/queued').length >= 3, { what: 'the held webhooks', timeoutMs: 20000 });
    assert.deepEqual(rx.verify('/queued', sub.secret).map((v) => v.payload.eventId).sort(), [...ids].sort());
  });

  test('backlog counts failed deliveries waiting for their retry', async () => {
    const slow = new Outbound({ retrySchedule: '0s,1h' });
    const srx = new Receiver();
    await srx.start();
    await slow.start();
    try {
      const t = await createTenant(slow);
      const c = await createClient(slow, t.key, { name: 'ERP', sourceSystem: 'logistics_erp' });
      await slow.call('PUT', '/v1/customers/1', { token: t.key, body: { customerNumber: 'C-1', name: 'C', externalIds: { logistics_erp: 'C1' } } });
      const imp = await slow.call('POST', '/v1/imports/targets', { token: c.key, body: { targets: [{ externalId: 'T', customerExternalId: 'C1', title: 'T' }] } });
      const targetId = imp.body.results[0].targetId;
      const sub = await subscribe(slow, c, srx.url('/failing'), { eventTypes: ['appointment.started'] });
      srx.script('/failing', [500, 500]);
      const e1 = await slow.call('POST', '/v1/events', { token: t.key, body: started(targetId, 1) });
      assert.equal(e1.status, 202, e1.text);
      await eventually(() => srx.received('/failing').length >= 1, { what: 'the first attempt' });
      const b = await eventually(async () => {
        const r = (await slow.call('GET', `/v1/subscriptions/${sub.id}`, { token: c.key })).body.backlog;
        return r.pending === 1 && r.oldestDueAtUtc && Date.parse(r.oldestDueAtUtc) > Date.now() + 30 * 60 * 1000 ? r : null;
      }, { what: 'a failed delivery due in an hour' });
      assert.equal(b.pending, 1);
    } finally {
      await slow.cleanup();
      await srx.stop();
    }
  });
});
