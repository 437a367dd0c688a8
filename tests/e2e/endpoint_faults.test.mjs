// Endpoint faults (CONTRACT §6, §11): 410 Gone and automatic disabling, operational webhooks
// (subscription.disabled, delivery.dead), ordered delivery per target, rate limits.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Outbound, Receiver, createClient, createTenant, eventually, sleep, subscribe } from './harness.mjs';

const rx = new Receiver();
before(async () => { await rx.start(); });
after(async () => { await rx.stop(); });

// A tenant with one client, a customer and targets T-1..T-n.
async function setup(ob, targets = 2) {
  const tenant = await createTenant(ob);
  const erp = await createClient(ob, tenant.key, { name: 'ERP', sourceSystem: 'logistics_erp' });
  await ob.call('PUT', '/v1/customers/1', { token: tenant.key, body: { customerNumber: 'C-1', name: 'C', externalIds: { logistics_erp: 'C1' } } });
  const list = Array.from({ length: targets }, (_, i) => ({ externalId: `T-${i + 1}`, customerExternalId: 'C1', title: `T${i + 1}` }));
  const r = await ob.call('POST', '/v1/imports/targets', { token: erp.key, body: { targets: list } });
  assert.equal(r.status, 200, r.text);
  return { tenant, erp, targetIds: r.body.results.map((x) => x.targetId) };
}

async function subscribeAt(ob, erp, path, extra = {}) {
  return { ...(await subscribe(ob, erp, rx.url(path), extra)), path };
}

async function publish(ob, tenant, targetId, occurredAtUtc = '2026-06-25T14:02:00Z', data = { appointmentId: 1, startedAtUtc: '2026-06-25T14:02:00Z' }) {
  const r = await ob.call('POST', '/v1/events', { token: tenant.key, body: { eventType: 'appointment.started', targetId, occurredAtUtc, data } });
  assert.equal(r.status, 202, r.text);
  return r.body.eventId;
}

async function putOps(ob, tenant, path) {
  const r = await ob.call('PUT', '/v1/operations-webhook', { token: tenant.key, body: { url: rx.url(path) } });
  assert.ok(r.status === 201 || r.status === 200, r.text);
  return r;
}

describe('disabling and operational webhooks', () => {
  const ob = new Outbound();
  let env;
  before(async () => { await ob.start(); env = await setup(ob); });
  after(async () => { await ob.cleanup(); });

  test('operations webhook: PUT shows the secret once, GET never, DELETE removes it', async () => {
    const { tenant, erp } = await setup(ob);
    const created = await putOps(ob, tenant, '/ops-crud');
    assert.equal(created.status, 201);
    assert.match(created.body.secret, /^whsec_/);
    const changed = await putOps(ob, tenant, '/ops-crud-2');
    assert.equal(changed.status, 200);
    assert.equal(changed.body.secret, undefined);
    const got = await ob.call('GET', '/v1/operations-webhook', { token: tenant.key });
    assert.equal(got.status, 200);
    assert.equal(got.body.url, rx.url('/ops-crud-2'));
    assert.equal(got.body.secret, undefined);
    // Tenant keys only; never listed as a subscription.
    const asClient = await ob.call('GET', '/v1/operations-webhook', { token: erp.key });
    assert.equal(asClient.status, 403);
    const subs = await ob.call('GET', '/v1/subscriptions', { token: tenant.key });
    assert.equal(subs.body.data.length, 0);
    assert.equal((await ob.call('DELETE', '/v1/operations-webhook', { token: tenant.key })).status, 204);
    assert.equal((await ob.call('GET', '/v1/operations-webhook', { token: tenant.key })).status, 404);
    assert.equal((await ob.call('DELETE', '/v1/operations-webhook', { token: tenant.key })).status, 404);
  });

  test('410 Gone disables at once, cancels, is announced; re-enabling does not resend', async () => {
    const { tenant, erp, targetIds } = env;
    const ops = await putOps(ob, tenant, '/ops-410');
    const sub = await subscribeAt(ob, erp, '/gone');
    rx.script('/gone', [410]);
    const first = await publish(ob, tenant, targetIds[0]);
    const view = await eventually(async () => {
      const r = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
      return r.body.enabled === false && r.body;
    }, { what: 'subscription disabled' });
    assert.match(view.disabledReason, /410/);
    assert.ok(view.disabledAtUtc);
    assert.ok('lastSuccessAtUtc' in view && 'failingSinceUtc' in view);
    const ev = await eventually(async () => {
      const r = await ob.call('GET', `/v1/events/${first}`, { token: erp.key });
      return r.body.deliveries?.[0]?.status === 'cancelled' && r.body;
    }, { what: 'delivery cancelled' });
    assert.equal(ev.deliveries[0].attempts.length, 1);

    const announced = await eventually(() => rx.verify('/ops-410', ops.body.secret).find((w) => w.payload.eventType === 'subscription.disabled'), { what: 'subscription.disabled' });
    assert.equal(announced.payload.data.subscriptionId, sub.id);
    assert.equal(announced.payload.data.clientId, erp.clientId);
    assert.match(announced.payload.data.reason, /410/);
    assert.ok(announced.payload.data.disabledAtUtc);
    // Operational events are not the tenant's events.
    const events = await ob.call('GET', '/v1/events', { token: tenant.key });
    assert.ok(events.body.data.every((e) => !['subscription.disabled', 'delivery.dead'].includes(e.eventType)), events.text);

    // Disabled: no new deliveries.
    const missed = await publish(ob, tenant, targetIds[0]);
    const patched = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { enabled: true } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.enabled, true);
    assert.equal(patched.body.disabledReason, null);
    const next = await publish(ob, tenant, targetIds[0]);
    await eventually(() => rx.received('/gone').some((w) => w.headers['webhook-id'] === next), { what: 'delivery after re-enable' });
    await sleep(300);
    const ids = rx.received('/gone').map((w) => w.headers['webhook-id']);
    assert.ok(!ids.includes(missed), 'a missed event was sent after re-enabling');
    assert.equal(ids.filter((id) => id === first).length, 1, 'the cancelled event was resent');
  });

  test('a dead delivery is announced; the failing operations endpoint announces nothing of its own', async () => {
    const { tenant, erp, targetIds } = await setup(ob);
    const ops = await putOps(ob, tenant, '/ops-dead');
    const sub = await subscribeAt(ob, erp, '/always-500');
    rx.decide('/always-500', () => 500);
    const eventId = await publish(ob, tenant, targetIds[0]);
    const dead = await eventually(() => rx.verify('/ops-dead', ops.body.secret).find((w) => w.payload.eventType === 'delivery.dead'), { what: 'delivery.dead' });
    assert.deepEqual(
      { eventId: dead.payload.data.eventId, subscriptionId: dead.payload.data.subscriptionId, eventType: dead.payload.data.eventType, attempts: dead.payload.data.attempts },
      { eventId, subscriptionId: sub.id, eventType: 'appointment.started', attempts: 3 });
    assert.match(dead.payload.data.lastError, /500/);

    // Now the operations endpoint itself fails until its deliveries go dead: nothing more is
    // produced for it (no delivery.dead about a delivery.dead).
    rx.decide('/ops-dead', () => 500);
    const before = rx.received('/ops-dead').length;
    await publish(ob, tenant, targetIds[1]);
    await eventually(() => rx.received('/ops-dead').length >= before + 3, { what: 'ops retries' });
    await sleep(1000);
    const types = rx.received('/ops-dead').slice(before).map((w) => JSON.parse(w.body).eventType);
    assert.deepEqual(types, ['delivery.dead', 'delivery.dead', 'delivery.dead'], types.join());
  });
});

describe('automatic disabling', () => {
  const ob = new Outbound({ args: ['--disable-after', '1s'], retrySchedule: '0s,100ms,100ms,100ms,100ms,100ms,100ms' });
  before(async () => { await ob.start(); });
  after(async () => { await ob.cleanup(); });

  test('failing for --disable-after with at least 5 attempts disables and announces', async () => {
    const { tenant, erp, targetIds } = await setup(ob);
    const ops = await putOps(ob, tenant, '/ops-auto');
    const sub = await subscribeAt(ob, erp, '/auto-fail');
    rx.decide('/auto-fail', () => 503);
    const started = Date.now();
    for (let i = 0; i < 4; i++) {
      await publish(ob, tenant, targetIds[0]);
      await sleep(400);
    }
    const view = await eventually(async () => {
      const r = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
      return r.body.enabled === false && r.body;
    }, { what: 'auto-disabled' });
    assert.ok(Date.now() - started >= 1000);
    assert.match(view.disabledReason, /failing since .* without a success \(\d+ attempts\)/);
    assert.ok(view.failingSinceUtc);
    assert.equal(view.lastSuccessAtUtc, null);
    const announced = await eventually(() => rx.verify('/ops-auto', ops.body.secret).find((w) => w.payload.eventType === 'subscription.disabled'), { what: 'announced' });
    assert.equal(announced.payload.data.reason, view.disabledReason);
    // Exactly once.
    await sleep(300);
    assert.equal(rx.verify('/ops-auto', ops.body.secret).filter((w) => w.payload.eventType === 'subscription.disabled').length, 1);
  });
});

describe('ordered delivery and rate limits', () => {
  const ob = new Outbound({ retrySchedule: '0s,300ms,300ms,300ms' });
  before(async () => { await ob.start(); });
  after(async () => { await ob.cleanup(); });

  test('ordered: a later event of a target waits for the earlier one; other targets flow', async () => {
    const { tenant, erp, targetIds } = await setup(ob);
    const [a, b] = targetIds;
    await subscribeAt(ob, erp, '/ordered', { ordered: true });
    let a1Failures = 0;
    let a1;
    rx.decide('/ordered', (body) => {
      if (body?.eventId === a1 && a1Failures < 2) {
        a1Failures += 1;
        return 500;
      }
      return undefined;
    });
    a1 = await publish(ob, tenant, a, '2026-06-25T14:00:00Z');
    const a2 = await publish(ob, tenant, a, '2026-06-25T14:01:00Z');
    const a3 = await publish(ob, tenant, a, '2026-06-25T14:02:00Z');
    const b1 = await publish(ob, tenant, b, '2026-06-25T14:00:30Z');
    const b2 = await publish(ob, tenant, b, '2026-06-25T14:01:30Z');
    await eventually(() => rx.received('/ordered').filter((w) => [a3].includes(w.headers['webhook-id'])).length === 1, { what: 'a3 delivered' });
    const seq = rx.received('/ordered').map((w) => w.headers['webhook-id']);
    const aSeq = seq.filter((id) => [a1, a2, a3].includes(id));
    assert.deepEqual(aSeq, [a1, a1, a1, a2, a3]);
    // Target B did not wait for A's retries.
    assert.ok(seq.indexOf(b2) < seq.lastIndexOf(a1), seq.join());
    assert.ok(seq.indexOf(b1) < seq.indexOf(b2));
  });

  test('ordered: an event accepted late with an earlier occurredAtUtc goes out at once', async () => {
    const { tenant, erp, targetIds } = await setup(ob);
    await subscribeAt(ob, erp, '/ordered-late', { ordered: true });
    const later = await publish(ob, tenant, targetIds[0], '2026-06-25T15:00:00Z');
    await eventually(() => rx.received('/ordered-late').length === 1, { what: 'first' });
    const earlier = await publish(ob, tenant, targetIds[0], '2026-06-25T14:00:00Z');
    await eventually(() => rx.received('/ordered-late').length === 2, { what: 'late earlier event' });
    assert.deepEqual(rx.received('/ordered-late').map((w) => w.headers['webhook-id']), [later, earlier]);
  });

  test('rateLimitPerSecond holds a subscription back without slowing another', async () => {
    const { tenant, erp, targetIds } = await setup(ob);
    await subscribeAt(ob, erp, '/limited', { rateLimitPerSecond: 10 });
    await subscribeAt(ob, erp, '/free');
    const t0 = Date.now();
    for (let i = 0; i < 30; i++) await publish(ob, tenant, targetIds[i % 2]);
    await eventually(() => rx.received('/free').length === 30, { what: 'free all' });
    const freeDone = Date.now();
    await eventually(() => rx.received('/limited').length === 30, { what: 'limited all' });
    const limited = rx.received('/limited').map((w) => w.at);
    const span = Math.max(...limited) - Math.min(...limited);
    assert.ok(span >= 1500, `30 deliveries at 10/s took only ${span} ms`);
    // In any one second after the first burst, at most ~10 (+ slack).
    const firstAt = Math.min(...limited);
    const inSecondTwo = limited.filter((t) => t >= firstAt + 1000 && t < firstAt + 2000).length;
    assert.ok(inSecondTwo <= 13, `${inSecondTwo} in one second`);
    assert.ok(freeDone - t0 < span + 5000);
  });
});
