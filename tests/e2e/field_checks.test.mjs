// Two input checks from the review of issue 9, on the wire:
//   - target.scheduled with scheduledEndUtc before scheduledStartUtc is refused (422, the field
//     named) and stores nothing, as an import refuses latestEndUtc before earliestStartUtc;
//   - a payload option written the seed's way (IncludeCustomerContext) stays `unknown_field`, and
//     the message says which name is meant; nothing is created.
// And the published schema of billing.event_created: `lines` optional (absent or null).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outbound, Receiver, assertError, seedOneTarget, serveDuring } from './harness.mjs';

const ob = new Outbound();
const rx = new Receiver();
let tenant, erp, targetId;

serveDuring(ob, rx, async () => {
  ({ tenant, erp, targetId } = await seedOneTarget(ob));
});

async function eventCount() {
  const r = await ob.call('GET', '/v1/events?limit=250', { token: tenant.key });
  assert.equal(r.status, 200, r.text);
  return r.body.data.length;
}

function scheduled(start, end) {
  return ob.call('POST', '/v1/events', {
    token: tenant.key,
    body: { eventType: 'target.scheduled', targetId, occurredAtUtc: '2026-06-25T08:00:00Z', data: { appointmentId: 441, scheduledStartUtc: start, scheduledEndUtc: end } },
  });
}

test('target.scheduled: an end before the start is 422 on data.scheduledEndUtc and stores nothing', async () => {
  const before = await eventCount();
  const r = await scheduled('2026-06-25T10:00:00+02:00', '2026-06-25T07:59:00Z');
  assertError(r, 422, 'invalid_value');
  assert.equal(r.body.error.field, 'data.scheduledEndUtc', r.text);
  assert.match(r.body.error.message, /scheduledEndUtc must not be before data\.scheduledStartUtc/);
  assert.equal(await eventCount(), before);
  // The same instant written with another offset is not "before"; a later end is fine.
  assert.equal((await scheduled('2026-06-25T10:00:00+02:00', '2026-06-25T08:00:00Z')).status, 202);
  assert.equal((await scheduled('2026-06-25T10:00:00Z', '2026-06-25T11:00:00Z')).status, 202);
  assert.equal(await eventCount(), before + 2);
});

test('options written the seed\'s way: unknown_field, naming the option meant', async () => {
  const seedWay = { IncludeCustomerContext: false, IncludeContactDetails: false, IncludeSummaryPreview: true, IncludeBillingDetails: true };
  const r = await ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url: rx.url('/s'), eventTypes: ['*'], options: seedWay } });
  assertError(r, 422, 'validation_failed');
  const details = Object.fromEntries(r.body.error.details.map((d) => [d.field, d]));
  for (const name of Object.keys(seedWay)) {
    const meant = name[0].toLowerCase() + name.slice(1);
    const d = details[`options.${name}`];
    assert.ok(d, r.text);
    assert.equal(d.code, 'unknown_field');
    assert.equal(d.message, `unknown field options.${name}; did you mean ${meant}?`);
  }
  const list = await ob.call('GET', '/v1/subscriptions', { token: erp.key });
  assert.equal(list.body.data.length, 0, list.text);

  // One bad name alone: its own code and message at the top.
  const one = await ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url: rx.url('/s'), eventTypes: ['*'], options: { IncludeCustomerContext: false } } });
  assertError(one, 422, 'unknown_field');
  assert.equal(one.body.error.field, 'options.IncludeCustomerContext');
  assert.equal(one.body.error.message, 'unknown field options.IncludeCustomerContext; did you mean includeCustomerContext?');
});

// A list like every other (CONTRACT §8): `limit` and `cursor` page it, in the catalog's order.
test('GET /v1/event-types pages with limit and cursor', async () => {
  const all = await ob.call('GET', '/v1/event-types', { token: tenant.key });
  assert.equal(all.status, 200, all.text);
  assert.equal(all.body.data.length, 13);
  assert.equal(all.body.nextCursor, null);
  const seen = [];
  let cursor = null;
  for (let pages = 0; pages < 10; pages++) {
    const q = cursor ? `?limit=5&cursor=${encodeURIComponent(cursor)}` : '?limit=5';
    const r = await ob.call('GET', `/v1/event-types${q}`, { token: tenant.key });
    assert.equal(r.status, 200, r.text);
    seen.push(...r.body.data.map((t) => t.eventType));
    cursor = r.body.nextCursor;
    if (!cursor) break;
  }
  assert.deepEqual(seen, all.body.data.map((t) => t.eventType));
  assertError(await ob.call('GET', '/v1/event-types?cursor=nope', { token: tenant.key }), 422, 'invalid_cursor');
  assertError(await ob.call('GET', '/v1/event-types?limit=0', { token: tenant.key }), 422, 'invalid_limit');
});

// The events list's cursor is an event id: anything else is 422 invalid_cursor, as on every other
// list (compared as text, `abc` used to end the list and `zzz` to start it over).
test('GET /v1/events refuses a cursor it never gave out', async () => {
  for (const bad of ['abc', 'zzz', 'evt_', 'evt_0000', '12']) {
    assertError(await ob.call('GET', `/v1/events?cursor=${bad}`, { token: tenant.key }), 422, 'invalid_cursor');
    assertError(await ob.call('GET', `/v1/events?targetId=${targetId}&cursor=${bad}`, { token: tenant.key }), 422, 'invalid_cursor');
  }
  const ok = await ob.call('GET', '/v1/events?cursor=evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A', { token: tenant.key });
  assert.equal(ok.status, 200, ok.text);
});

test('billing.event_created schema: lines optional, absent or null', async () => {
  const r = await ob.call('GET', '/v1/event-types', { token: tenant.key });
  assert.equal(r.status, 200, r.text);
  const billing = r.body.data.find((t) => t.eventType === 'billing.event_created');
  assert.ok(billing, r.text);
  const b = billing.schema.properties.billing;
  assert.deepEqual(b.required, ['amount', 'currency']);
  assert.deepEqual(b.properties.lines.type, ['array', 'null']);
});
