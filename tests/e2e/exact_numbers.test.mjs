// Billing values pass through exactly as published (CONTRACT.md §10): a JSON number keeps its
// text (`149.50` stays `149.50`, `1e2` stays `1e2`), a decimal string stays a string, and
// `lines` left out stays out. Checked byte for byte on the wire (the raw body the receiver got,
// signature verified) and in `GET /v1/events/{id}` (the raw text of the answer), so neither a
// re-parse into doubles nor a re-serialisation can hide behind JSON.parse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outbound, Receiver, createClient, createTenant, eventually, importTargets, serveDuring, subscribe } from './harness.mjs';

const ob = new Outbound();
const rx = new Receiver();
let tenant, erp, targetId, sub;

serveDuring(ob, rx, async () => {
  tenant = await createTenant(ob);
  erp = await createClient(ob, tenant.key, { name: 'ERP', sourceSystem: 'logistics_erp', billingDetailsAllowed: true });
  [targetId] = await importTargets(ob, tenant.key, erp.key);
  sub = await subscribe(ob, erp, rx.url('/billing'), {
    eventTypes: ['billing.event_created'],
    options: { includeBillingDetails: true, includeCustomerContext: false, includeContactDetails: false },
  });
});

// Publishes a billing event whose `billing` member is the raw JSON text `billingText` (written by
// hand: JSON.stringify would renumber it before Outbound ever saw it). Returns the eventId.
async function publishBilling(billingText, billingEventId) {
  const raw = `{"eventType":"billing.event_created","targetId":${targetId},` +
    `"occurredAtUtc":"2026-06-25T15:00:00Z","data":{"appointmentId":441,"visitReportId":9,` +
    `"billingEventId":${billingEventId},"billing":${billingText}}}`;
  const r = await ob.call('POST', '/v1/events', { token: tenant.key, raw, headers: { 'content-type': 'application/json' } });
  assert.equal(r.status, 202, r.text);
  return r.body.eventId;
}

async function webhookFor(eventId) {
  await eventually(() => rx.received('/billing').some((q) => q.headers['webhook-id'] === eventId), { what: `webhook of ${eventId}` });
  const got = rx.verify('/billing', sub.secret).find((v) => v.headers['webhook-id'] === eventId);
  assert.ok(got, eventId);
  return got;
}

test('billing numbers keep their text on the wire and in GET /v1/events/{id}', async () => {
  // Whitespace inside the published object goes (the body is compact); every number and string
  // stays as written, in the publisher's order.
  const published = '{ "amount": 149.50, "currency": "EUR", "lines": [ ' +
    '{"description": "Seal kit", "quantity": 1e2, "unitPrice": 1.4950E+0}, ' +
    '{"description": "Labour", "quantity": 0.50, "unitPrice": "100.00"}, ' +
    '{"description": "Big", "quantity": 12345678901234567890123, "unitPrice": -0.0} ] }';
  const exact = '{"amount":149.50,"currency":"EUR","lines":[' +
    '{"description":"Seal kit","quantity":1e2,"unitPrice":1.4950E+0},' +
    '{"description":"Labour","quantity":0.50,"unitPrice":"100.00"},' +
    '{"description":"Big","quantity":12345678901234567890123,"unitPrice":-0.0}]}';
  const eventId = await publishBilling(published, 5001);

  const hook = await webhookFor(eventId);
  assert.ok(hook.body.includes(`"billing":${exact}`), `webhook body: ${hook.body}`);
  assert.equal(hook.payload.data.billing.currency, 'EUR');

  // The receiver has the webhook before Outbound has its answer: the detail shows the attempt's
  // deliveryId once the outcome is recorded.
  const ev = await eventually(async () => {
    const r = await ob.call('GET', `/v1/events/${eventId}`, { token: tenant.key });
    return r.status === 200 && r.body.deliveries?.[0]?.status === 'succeeded' ? r : null;
  }, { what: `the recorded attempt of ${eventId}` });
  assert.equal(ev.body.deliveries.length, 1, ev.text);
  assert.ok(ev.text.includes(`"billing":${exact}`), `GET /v1/events/{id}: ${ev.text}`);
  // The payload shown is the body that was sent, except for nothing at all.
  assert.deepEqual(ev.body.deliveries[0].payload, JSON.parse(hook.body));
  // The client's view of the same event shows the same text.
  const mine = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
  assert.equal(mine.status, 200, mine.text);
  assert.ok(mine.text.includes(`"billing":${exact}`), mine.text);
});

test('billing without lines: absent on publish, absent in the payload', async () => {
  const eventId = await publishBilling('{"currency":"EUR","amount":1e2}', 5002);
  const hook = await webhookFor(eventId);
  assert.ok(hook.body.includes('"billing":{"currency":"EUR","amount":1e2}'), hook.body);
  assert.ok(!('lines' in hook.payload.data.billing), hook.body);
  const ev = await ob.call('GET', `/v1/events/${eventId}`, { token: tenant.key });
  assert.ok(ev.text.includes('"billing":{"currency":"EUR","amount":1e2}'), ev.text);
});

test('POST /v1/events/batch: each item keeps its own billing text, whatever the items before it hold', async () => {
  const item = (billingId, billing, extra = '') =>
    `{"eventType":"billing.event_created","targetId":${targetId},"occurredAtUtc":"2026-06-25T15:00:00Z",` +
    `"data":{"appointmentId":441,"visitReportId":9,"billingEventId":${billingId},"billing":${billing}${extra}}}`;
  // The first item is refused (an unknown field whose text holds commas, brackets and escaped
  // quotes); the two after it must still get their own billing text, not a neighbour's.
  const raw = `{"events": [ ${item(6001, '{"amount":1.10,"currency":"EUR"}', ',"odd":"a,]}\\"[{,"')} ,` +
    ` ${item(6002, '{ "amount" : 149.50 , "currency" : "EUR" }')},${item(6003, '{"amount":2E3,"currency":"SEK"}')} ] }`;
  const r = await ob.call('POST', '/v1/events/batch', { token: tenant.key, raw, headers: { 'content-type': 'application/json' } });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.results.length, 3, r.text);
  assert.ok(r.body.results[0].error, r.text);
  const second = await webhookFor(r.body.results[1].eventId);
  assert.ok(second.body.includes('"billing":{"amount":149.50,"currency":"EUR"}'), second.body);
  const third = await webhookFor(r.body.results[2].eventId);
  assert.ok(third.body.includes('"billing":{"amount":2E3,"currency":"SEK"}'), third.body);
});
