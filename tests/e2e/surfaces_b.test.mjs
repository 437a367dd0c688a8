// CONTRACT §13, a subscription's tools: test webhooks (POST /v1/subscriptions/{id}/test) and the
// stats of its attempts (GET /v1/subscriptions/{id}/stats), against a real receiver that verifies
// every webhook with the public Standard Webhooks library. Short retry schedule, no jitter
// (0s, 200ms, 200ms): a test event that were retried would show a second request within 0.5 s.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Outbound, Receiver, assertError, createClient, eventually, seedOneTarget, serveDuring, sleep, subscribe,
} from './harness.mjs';

const ob = new Outbound();
const rx = new Receiver();
let tenant, erp, targetId;

async function subscribeTo(name, extra = {}) {
  return { ...(await subscribe(ob, erp, rx.url(`/${name}`), extra)), path: `/${name}` };
}

async function sendTest(sub, body, token = erp.key) {
  return ob.call('POST', `/v1/subscriptions/${sub.id}/test`, { token, body });
}

// The event and the subscription's delivery of it, once `pred(delivery)` holds.
async function deliveryOf(eventId, sub, pred, what) {
  return eventually(async () => {
    const r = await ob.call('GET', `/v1/events/${eventId}`, { token: tenant.key });
    const d = r.body?.deliveries?.find((x) => x.subscriptionId === sub.id);
    return d && pred(d) && { event: r.body.event, delivery: d };
  }, { what });
}

async function listedEventIds(token, query = '') {
  const r = await ob.call('GET', `/v1/events?limit=250${query}`, { token });
  assert.equal(r.status, 200, r.text);
  return r.body.data.map((e) => e.eventId);
}

serveDuring(ob, rx, async () => {
  ({ tenant, erp, targetId } = await seedOneTarget(ob));
  const r = await ob.call('PUT', '/v1/operations-webhook', { token: tenant.key, body: { url: rx.url('/ops') } });
  assert.ok(r.status === 201 || r.status === 200, r.text);
});

test('a test event reaches this subscription alone, signed with its secret; readable, in the log, not listed', async () => {
  const sub = await subscribeTo('t-plain');
  const bystander = await subscribeTo('t-bystander', { eventTypes: ['*'] });
  const r = await sendTest(sub, undefined);
  assert.equal(r.status, 202, r.text);
  const { eventId } = r.body;
  assert.match(eventId, /^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(r.body.eventType, 'ordinavo.test');

  await eventually(() => rx.received(sub.path).length >= 1, { what: 'the test webhook' });
  const [got] = rx.verify(sub.path, sub.secret); // throws unless signed with this secret
  assert.equal(got.payload.eventId, eventId);
  assert.equal(got.payload.eventType, 'ordinavo.test');
  assert.equal(got.headers['webhook-id'], eventId);
  assert.equal(got.headers['ordinavo-event-type'], 'ordinavo.test');
  assert.equal(got.headers['ordinavo-attempt'], '1');
  assert.deepEqual(Object.keys(got.payload.data).sort(), ['message', 'subscriptionId']);
  assert.equal(got.payload.data.subscriptionId, sub.id);
  assert.equal(typeof got.payload.data.message, 'string');

  // Readable by id (tenant and the owning client), succeeded after one attempt.
  const { event, delivery } = await deliveryOf(eventId, sub, (d) => d.status === 'succeeded', 'succeeded');
  assert.equal(event.eventType, 'ordinavo.test');
  assert.equal(event.test, true);
  assert.equal(delivery.attempts.length, 1);
  assert.equal(delivery.payload.data.subscriptionId, sub.id);
  const asClient = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
  assert.equal(asClient.status, 200, asClient.text);
  assert.equal(asClient.body.deliveries.length, 1, 'one delivery: this subscription alone');

  // Not listed, for the tenant nor the client.
  assert.ok(!(await listedEventIds(tenant.key)).includes(eventId));
  assert.ok(!(await listedEventIds(erp.key)).includes(eventId));

  // In the subscription's delivery log, marked as a test.
  const log = await ob.call('GET', `/v1/subscriptions/${sub.id}/deliveries`, { token: erp.key });
  assert.equal(log.status, 200, log.text);
  const row = log.body.data.find((a) => a.eventId === eventId);
  assert.ok(row, log.text);
  assert.equal(row.test, true);
  assert.equal(row.eventType, 'ordinavo.test');
  assert.equal(row.httpStatus, 200);

  // An empty object is a body too; the bystander (subscribed to everything) got nothing.
  const again = await sendTest(sub, {});
  assert.equal(again.status, 202, again.text);
  await eventually(() => rx.received(sub.path).length >= 2, { what: 'second test webhook' });
  await sleep(300);
  assert.equal(rx.received(bystander.path).length, 0);
});

test('a failing receiver gets one attempt: never retried, no failingSince, no delivery.dead, no disabling', async () => {
  const sub = await subscribeTo('t-down');
  rx.script(sub.path, [500, 500, 500]);
  const r = await sendTest(sub, undefined);
  assert.equal(r.status, 202, r.text);
  const { delivery } = await deliveryOf(r.body.eventId, sub, (d) => d.status === 'dead', 'a final state');
  assert.equal(delivery.attempts.length, 1);
  assert.equal(delivery.attempts[0].httpStatus, 500);
  assert.equal(delivery.nextAttemptAtUtc, null);
  // Well past the whole schedule (0s, 200ms, 200ms): still one request.
  await sleep(1500);
  assert.equal(rx.received(sub.path).length, 1);
  const view = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
  assert.equal(view.body.failingSinceUtc, null);
  assert.equal(view.body.enabled, true);
  // A manual redelivery is refused too (a new test is one POST away); recover skips it.
  assertError(await ob.call('POST', `/v1/events/${r.body.eventId}/redeliver`, { token: erp.key, body: {} }), 409, 'test_event');
  const recovered = await ob.call('POST', `/v1/subscriptions/${sub.id}/recover`, {
    token: erp.key, body: { sinceUtc: '2020-01-01T00:00:00Z' },
  });
  assert.equal(recovered.status, 202, recovered.text);
  assert.equal(recovered.body.recovered, 0);

  // 410 Gone to a test disables nothing either.
  rx.script(sub.path, [410]);
  const gone = await sendTest(sub, undefined);
  assert.equal(gone.status, 202, gone.text);
  await deliveryOf(gone.body.eventId, sub, (d) => d.status === 'dead', 'the 410 test');
  await sleep(500);
  const after = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
  assert.equal(after.body.enabled, true, after.text);
  assert.equal(after.body.failingSinceUtc, null);
  // The operations webhook heard of nothing.
  assert.equal(rx.received('/ops').length, 0);
});

test('409 on a disabled subscription; 404 for another client\'s; 422 for an unknown type', async () => {
  const sub = await subscribeTo('t-disabled');
  const p = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { enabled: false } });
  assert.equal(p.status, 200, p.text);
  assertError(await sendTest(sub, undefined), 409, 'subscription_disabled');
  assertError(await sendTest(sub, {}, tenant.key), 409, 'subscription_disabled');

  const live = await subscribeTo('t-others');
  const crm = await createClient(ob, tenant.key, { name: 'CRM', sourceSystem: 'crm' });
  assertError(await sendTest(live, undefined, crm.key), 404, 'not_found');
  assertError(await ob.call('POST', '/v1/subscriptions/999999/test', { token: tenant.key }), 404, 'not_found');
  assertError(await sendTest(live, { eventType: 'ordinavo.nothing' }), 422, 'unknown_event_type');
  assertError(await sendTest(live, { eventType: 'appointment.completed', extra: 1 }), 422, 'unknown_field');
  assertError(await ob.call('POST', `/v1/subscriptions/${live.id}/test`, {
    token: erp.key, raw: '{', headers: { 'content-type': 'application/json' },
  }), 400);
  await sleep(500);
  assert.equal(rx.received(sub.path).length, 0);
  assert.equal(rx.received(live.path).length, 0);
});

test('a catalog type: an example with fixed ids, rendered with the subscription\'s options', async () => {
  const sub = await subscribeTo('t-example', {
    eventTypes: ['visit_report.*'],
    options: { includeCustomerContext: false, includeContactDetails: true, includeSummaryPreview: true },
  });
  const r = await sendTest(sub, { eventType: 'visit_report.approved' }, tenant.key);
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.eventType, 'visit_report.approved');
  await eventually(() => rx.received(sub.path).length >= 1, { what: 'the example webhook' });
  const [got] = rx.verify(sub.path, sub.secret);
  const { payload } = got;
  assert.equal(payload.eventId, r.body.eventId);
  assert.equal(payload.eventType, 'visit_report.approved');
  assert.equal(got.headers['ordinavo-event-type'], 'visit_report.approved');
  const { data } = payload;
  assert.equal(data.status, 'ReportApproved');
  assert.equal(data.sourceSystem, 'logistics_erp');
  // Example ids, not the tenant's target or directory.
  assert.notEqual(data.targetId, targetId);
  assert.equal(data.targetId, 900001);
  assert.equal(data.externalId, 'EXAMPLE-T-1001');
  assert.equal(data.visitReportId, 900601);
  assert.equal(typeof data.summaryPreview, 'string');
  assert.ok(!('summary' in data), 'the full summary never leaves');
  assert.deepEqual(Object.keys(data.customerContext), ['contact'], 'customer context off, contact details on');
  assert.equal(data.customerContext.contact.externalId, 'EXAMPLE-P-3');

  // Not listed even when filtering by its type; readable by id with its catalog type.
  assert.ok(!(await listedEventIds(tenant.key, '&eventType=visit_report.approved')).includes(payload.eventId));
  const { event } = await deliveryOf(payload.eventId, sub, (d) => d.status === 'succeeded', 'succeeded');
  assert.equal(event.eventType, 'visit_report.approved');
  assert.equal(event.test, true);

  // Another subscription's options: billing shows only where the client is allowed it.
  const bill = await subscribeTo('t-billing', { eventTypes: ['billing.*'], options: { includeBillingDetails: true } });
  const b = await sendTest(bill, { eventType: 'billing.event_created' });
  assert.equal(b.status, 202, b.text);
  await eventually(() => rx.received(bill.path).length >= 1, { what: 'the billing example' });
  const [billed] = rx.verify(bill.path, bill.secret);
  assert.equal(billed.payload.data.billingEventId, 900701);
  assert.ok(!('billing' in billed.payload.data), 'ERP is not allowed billing details');
});

test('stats: attempts by outcome in UTC buckets, newest last, test events left out', async () => {
  const sub = await subscribeTo('s-stats');
  rx.script(sub.path, [500, 503]); // attempts 1 and 2 fail, the third succeeds
  const pub = await ob.call('POST', '/v1/events', {
    token: tenant.key,
    body: {
      eventType: 'appointment.started', targetId, occurredAtUtc: '2026-06-25T14:02:00Z',
      data: { appointmentId: 9, startedAtUtc: '2026-06-25T14:02:00Z' },
    },
  });
  assert.equal(pub.status, 202, pub.text);
  await deliveryOf(pub.body.eventId, sub, (d) => d.status === 'succeeded', 'three attempts');
  // A failing test and a succeeding one: neither counts.
  rx.script(sub.path, [500]);
  const t1 = await sendTest(sub, undefined);
  await deliveryOf(t1.body.eventId, sub, (d) => d.status === 'dead', 'failed test');
  const t2 = await sendTest(sub, undefined);
  await deliveryOf(t2.body.eventId, sub, (d) => d.status === 'succeeded', 'succeeded test');

  const sum = (buckets) => buckets.reduce((a, b) => ({ s: a.s + b.succeeded, f: a.f + b.failed }), { s: 0, f: 0 });
  const before = Date.now();
  const r = await ob.call('GET', `/v1/subscriptions/${sub.id}/stats?bucket=5m`, { token: erp.key });
  assert.equal(r.status, 200, r.text);
  const { buckets } = r.body;
  assert.equal(buckets.length, 24 * 12 + 1, 'the default 24 hours, the current bucket included');
  assert.deepEqual(sum(buckets), { s: 1, f: 2 });
  for (let i = 0; i < buckets.length; i++) {
    const start = Date.parse(buckets[i].startUtc);
    assert.equal(start % (5 * 60 * 1000), 0, 'aligned to UTC');
    if (i > 0) assert.equal(start - Date.parse(buckets[i - 1].startUtc), 5 * 60 * 1000, 'oldest first');
    const n = buckets[i].succeeded + buckets[i].failed;
    if (n === 0) {
      assert.equal(buckets[i].p50Ms, null);
      assert.equal(buckets[i].p95Ms, null);
    } else {
      assert.ok(Number.isInteger(buckets[i].p50Ms) && buckets[i].p50Ms >= 0);
      assert.ok(buckets[i].p95Ms >= buckets[i].p50Ms);
    }
  }
  assert.ok(Date.parse(buckets.at(-1).startUtc) <= before + 1000, 'newest last');
  assert.ok(Date.parse(buckets.at(-1).startUtc) > before - 5 * 60 * 1000 - 1000);

  // Default bucket 1h; 1d from a given time; the tenant sees the same.
  const hourly = await ob.call('GET', `/v1/subscriptions/${sub.id}/stats`, { token: tenant.key });
  assert.equal(hourly.status, 200, hourly.text);
  assert.equal(hourly.body.buckets.length, 25);
  assert.deepEqual(sum(hourly.body.buckets), { s: 1, f: 2 });
  const since = new Date(Date.now() - 2 * 86400000).toISOString();
  const daily = await ob.call('GET', `/v1/subscriptions/${sub.id}/stats?bucket=1d&sinceUtc=${encodeURIComponent(since)}`, { token: erp.key });
  assert.equal(daily.status, 200, daily.text);
  assert.equal(daily.body.buckets.length, 3);
  assert.ok(daily.body.buckets.every((b) => b.startUtc.endsWith('T00:00:00Z')), daily.text);
  assert.deepEqual(sum(daily.body.buckets), { s: 1, f: 2 });

  // Another subscription's attempts are not in these; bad parameters are refused.
  const quiet = await subscribeTo('s-quiet');
  const none = await ob.call('GET', `/v1/subscriptions/${quiet.id}/stats`, { token: erp.key });
  assert.deepEqual(sum(none.body.buckets), { s: 0, f: 0 });
  assertError(await ob.call('GET', `/v1/subscriptions/${sub.id}/stats?bucket=7m`, { token: erp.key }), 422, 'invalid_bucket');
  assertError(await ob.call('GET', `/v1/subscriptions/${sub.id}/stats?bucket=5m&sinceUtc=2020-01-01T00:00:00Z`, { token: erp.key }), 422, 'too_many_buckets');
  assertError(await ob.call('GET', `/v1/subscriptions/${sub.id}/stats?sinceUtc=yesterday`, { token: erp.key }), 422, 'invalid_time');
  assertError(await ob.call('GET', `/v1/subscriptions/${sub.id}/stats?from=1`, { token: erp.key }), 422, 'unknown_parameter');
  const crm = await createClient(ob, tenant.key, { name: 'CRM2', sourceSystem: 'crm2' });
  assertError(await ob.call('GET', `/v1/subscriptions/${sub.id}/stats`, { token: crm.key }), 404, 'not_found');
});
