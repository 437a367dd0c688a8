// Endpoint faults (CONTRACT §6, §11): 410 Gone and automatic disabling, operational webhooks
// (subscription.disabled, delivery.dead), ordered delivery per target, rate limits.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Outbound, Receiver, attemptsOf, deliveriesTotal, eventually, maxInWindow, seedTargets, sleep, subscribe } from './harness.mjs';

const rx = new Receiver();
before(async () => { await rx.start(); });
after(async () => { await rx.stop(); });

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
  before(async () => { await ob.start(); env = await seedTargets(ob); });
  after(async () => { await ob.cleanup(); });

  test('operations webhook: PUT shows the secret once, GET never, DELETE removes it', async () => {
    const { tenant, erp } = await seedTargets(ob);
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
    const { tenant, erp, targetIds } = await seedTargets(ob);
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

  // A subscription disabled while its delivery's last attempt is in flight: the failed attempt
  // leaves the row cancelled (the disable's word), so it is not dead and no delivery.dead is
  // announced for it. Seen failing (found by an audit): the operations endpoint was told
  // "delivery.dead" about a delivery the API shows cancelled.
  test('a delivery cancelled during its last attempt is not announced dead', async () => {
    const { tenant, erp, targetIds } = await seedTargets(ob);
    const ops = await putOps(ob, tenant, '/ops-cancelled');
    const deadBefore = await deliveriesTotal(ob, 'dead');
    const sub = await subscribeAt(ob, erp, '/last-held');
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    rx.script('/last-held', [500, 500, held]);
    const eventId = await publish(ob, tenant, targetIds[0]);
    await eventually(() => rx.received('/last-held').length >= 3, { what: 'the last attempt' });
    const off = await ob.call('PATCH', `/v1/subscriptions/${sub.id}`, { token: erp.key, body: { enabled: false } });
    assert.equal(off.status, 200, off.text);
    release(500);
    await eventually(async () => {
      const v = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
      const d = v.body.deliveries?.find((x) => x.subscriptionId === sub.id);
      return d?.attempts?.length === 3 && d;
    }, { what: 'the last attempt recorded' }).then((d) => assert.equal(d.status, 'cancelled'));
    // A control: a dead delivery of another subscription is announced through the same endpoint.
    const other = await subscribeAt(ob, erp, '/dies');
    rx.decide('/dies', () => 500);
    const otherEvent = await publish(ob, tenant, targetIds[1]);
    await eventually(() => rx.verify('/ops-cancelled', ops.body.secret).some((w) => w.payload.data?.eventId === otherEvent), { what: 'the control delivery.dead' });
    const dead = rx.verify('/ops-cancelled', ops.body.secret).filter((w) => w.payload.eventType === 'delivery.dead');
    assert.deepEqual(dead.map((w) => w.payload.data.subscriptionId), [other.id], JSON.stringify(dead.map((w) => w.payload.data)));
    // Nor counted dead: the control alone.
    assert.equal(await deliveriesTotal(ob, 'dead'), deadBefore + 1);
  });
});

describe('automatic disabling', () => {
  // CONTRACT §6: a subscription is disabled once it has failed for --disable-after without a
  // success AND has had at least 5 attempts since it started failing. Each condition is checked
  // on its own, with the attempt times of the delivery log (the server's clock), not the test's
  // sleeps: here 5 attempts come long before --disable-after has passed; below, --disable-after
  // passes long before the 5th attempt. Seen failing with either condition of
  // delivery/internal/operations.cpp removed.
  const ob = new Outbound({ args: ['--disable-after', '1s'], retrySchedule: '0s,100ms,100ms,100ms,100ms,100ms,100ms' });
  before(async () => { await ob.start(); });
  after(async () => { await ob.cleanup(); });

  test('not before --disable-after has passed, though 5 attempts came sooner; then disabled and announced once', async () => {
    const { tenant, erp, targetIds } = await seedTargets(ob);
    const ops = await putOps(ob, tenant, '/ops-auto');
    const sub = await subscribeAt(ob, erp, '/auto-fail');
    rx.decide('/auto-fail', () => 503);
    // Two events at once: 14 attempts within ~0.6 s; then one more event every 400 ms, so that
    // attempts go on failing past the 1 s.
    await Promise.all([publish(ob, tenant, targetIds[0]), publish(ob, tenant, targetIds[1])]);
    for (let i = 0; i < 4; i++) {
      await sleep(400);
      await publish(ob, tenant, targetIds[0]);
    }
    const view = await eventually(async () => {
      const r = await ob.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
      return r.body.enabled === false && r.body;
    }, { what: 'auto-disabled' });
    const attempts = await attemptsOf(ob, erp.key, sub.id);
    const first = attempts[0].at;
    const disabledAt = Date.parse(view.disabledAtUtc);
    const before = attempts.filter((x) => x.at <= disabledAt);
    assert.ok(attempts.every((x) => x.httpStatus === 503), JSON.stringify(attempts));
    assert.equal(Date.parse(view.failingSinceUtc), first, 'failingSince is the first failed attempt');
    // The premise: 5 attempts came well before --disable-after had passed.
    assert.ok(attempts[4].at - first < 900, `the 5th attempt came ${attempts[4].at - first} ms after the first (too slow a machine for this test)`);
    assert.ok(before.length >= 5, `disabled after ${before.length} attempts`);
    assert.ok(disabledAt - first >= 1000, `disabled ${disabledAt - first} ms after the first failure (--disable-after 1s)`);
    const counted = Number(/\((\d+) attempts\)/.exec(view.disabledReason)?.[1]);
    assert.match(view.disabledReason, /failing since .* without a success \(\d+ attempts\)/);
    assert.ok(counted >= 5 && counted <= attempts.length, `${view.disabledReason}; ${attempts.length} attempts in the log`);
    assert.equal(view.lastSuccessAtUtc, null);
    const announced = await eventually(() => rx.verify('/ops-auto', ops.body.secret).find((w) => w.payload.eventType === 'subscription.disabled'), { what: 'announced' });
    assert.equal(announced.payload.data.reason, view.disabledReason);
    // Exactly once.
    await sleep(300);
    assert.equal(rx.verify('/ops-auto', ops.body.secret).filter((w) => w.payload.eventType === 'subscription.disabled').length, 1);
  });

  test('not before the 5th attempt, though --disable-after passed after the 1st', async () => {
    // One attempt per event (the schedule has no retries): one event, then a pause longer than
    // --disable-after, then one event at a time; the subscription must still be enabled after
    // attempts 2, 3 and 4 (each recorded, with its effects, in one transaction), and be disabled
    // by the 5th.
    const slow = new Outbound({ args: ['--disable-after', '1s'], retrySchedule: '0s' });
    await slow.start();
    try {
      const { tenant, erp, targetIds } = await seedTargets(slow);
      const sub = { ...(await subscribe(slow, erp, rx.url('/auto-fail-5'))), path: '/auto-fail-5' };
      rx.decide('/auto-fail-5', () => 500);
      const enabled = async () => (await slow.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key })).body.enabled;
      await publish(slow, tenant, targetIds[0]);
      await eventually(async () => (await attemptsOf(slow, erp.key, sub.id)).length === 1, { what: 'attempt 1' });
      await sleep(1300);
      for (let n = 2; n <= 4; n++) {
        await publish(slow, tenant, targetIds[0]);
        await eventually(async () => (await attemptsOf(slow, erp.key, sub.id)).length === n, { what: `attempt ${n}` });
        assert.equal(await enabled(), true, `disabled after ${n} attempts`);
      }
      const attempts = await attemptsOf(slow, erp.key, sub.id);
      assert.ok(attempts[1].at - attempts[0].at >= 1000, 'the premise: --disable-after had passed by the 2nd attempt');
      await publish(slow, tenant, targetIds[0]);
      const view = await eventually(async () => {
        const r = await slow.call('GET', `/v1/subscriptions/${sub.id}`, { token: erp.key });
        return r.body.enabled === false && r.body;
      }, { what: 'disabled by the 5th attempt' });
      const all = await attemptsOf(slow, erp.key, sub.id);
      assert.equal(all.length, 5);
      assert.ok(Date.parse(view.disabledAtUtc) >= all[4].at);
      assert.match(view.disabledReason, /\(5 attempts\)/);
    } finally {
      await slow.cleanup();
    }
  });
});

describe('ordered delivery and rate limits', () => {
  const ob = new Outbound({ retrySchedule: '0s,300ms,300ms,300ms' });
  before(async () => { await ob.start(); });
  after(async () => { await ob.cleanup(); });

  // Published out of occurredAtUtc order while the target's first event is held (it fails once,
  // then its second attempt is held open by the receiver until everything is published): the
  // rest must arrive in occurredAtUtc order, not in the order published, each exactly once.
  // Seen failing with the subscription made without `ordered` (FIFO order, and a2 ahead of a0).
  test('ordered: a target\'s events arrive in occurredAtUtc order whatever order they were published in; other targets flow', async () => {
    const { tenant, erp, targetIds } = await seedTargets(ob);
    const [a, b] = targetIds;
    await subscribeAt(ob, erp, '/ordered', { ordered: true });
    let a0;
    let a0Attempts = 0;
    let release;
    const released = new Promise((r) => { release = r; });
    rx.decide('/ordered', (body) => {
      if (body?.eventId !== a0) return undefined;
      a0Attempts += 1;
      if (a0Attempts === 1) return 500;
      if (a0Attempts === 2) return released.then(() => 200);
      return undefined;
    });
    a0 = await publish(ob, tenant, a, '2026-06-25T14:00:00Z');
    await eventually(() => a0Attempts >= 2, { what: 'a0 retried and held' });
    // Out of order: the latest first.
    const a3 = await publish(ob, tenant, a, '2026-06-25T14:03:00Z');
    const a1 = await publish(ob, tenant, a, '2026-06-25T14:01:00Z');
    const a2 = await publish(ob, tenant, a, '2026-06-25T14:02:00Z');
    const b1 = await publish(ob, tenant, b, '2026-06-25T14:00:30Z');
    const b2 = await publish(ob, tenant, b, '2026-06-25T14:01:30Z');
    // Target B flows while A's head is held.
    await eventually(() => [b1, b2].every((id) => rx.received('/ordered').some((w) => w.headers['webhook-id'] === id)), { what: 'b1, b2 while a0 is held' });
    await sleep(300);
    const meanwhile = rx.received('/ordered').map((w) => w.headers['webhook-id']);
    assert.ok(![a1, a2, a3].some((id) => meanwhile.includes(id)), 'a later event of A went out while a0 was held');
    assert.ok(meanwhile.includes(b1) && meanwhile.includes(b2), 'target B waited for A');
    release();
    const ids = [a0, a1, a2, a3];
    await eventually(() => [a1, a2, a3].every((id) => rx.received('/ordered').some((w) => w.headers['webhook-id'] === id)), { what: 'a1, a2, a3 (none lost)' });
    await sleep(300);
    const seq = rx.received('/ordered').map((w) => w.headers['webhook-id']);
    assert.deepEqual(seq.filter((id) => ids.includes(id)), [a0, a0, a1, a2, a3], 'A in occurredAtUtc order, each once after a0\'s retry');
    assert.deepEqual(seq.filter((id) => [b1, b2].includes(id)), [b1, b2]);
  });

  test('ordered: an event accepted late with an earlier occurredAtUtc goes out at once', async () => {
    const { tenant, erp, targetIds } = await seedTargets(ob);
    await subscribeAt(ob, erp, '/ordered-late', { ordered: true });
    const later = await publish(ob, tenant, targetIds[0], '2026-06-25T15:00:00Z');
    await eventually(() => rx.received('/ordered-late').length === 1, { what: 'first' });
    const earlier = await publish(ob, tenant, targetIds[0], '2026-06-25T14:00:00Z');
    await eventually(() => rx.received('/ordered-late').length === 2, { what: 'late earlier event' });
    assert.deepEqual(rx.received('/ordered-late').map((w) => w.headers['webhook-id']), [later, earlier]);
  });

  // CONTRACT §12: at most the limit + 1 in every 1-second window at the receiver. All events are
  // published at once, and an unlimited subscription fed the same events is the control: it gets
  // more than the limit in one second (so the publisher does not spread the arrivals; the
  // limiter does) and has everything long before the limited one (the limit slows no other
  // subscription). Seen failing with rateLimitPerSecond left out (40 in one second).
  // The limit is checked on the attempts' send times (attemptedAtUtc, stamped as the token is
  // taken), which is what the limiter controls: a loaded machine delays the receiver's reads, so
  // that arrivals spaced 100 ms apart can be read in a bunch (12 in one second was seen on
  // 6 Dec with a benchmark running beside the suite). The arrivals get a looser bound.
  test('rateLimitPerSecond: every 1-second window holds at most the limit + 1; an unlimited subscription fed the same events is not held back', async () => {
    const LIMIT = 10;
    const EVENTS = 40;
    const { tenant, erp, targetIds } = await seedTargets(ob);
    const limitedSub = await subscribeAt(ob, erp, '/limited', { rateLimitPerSecond: LIMIT });
    await subscribeAt(ob, erp, '/free');
    const ids = await Promise.all(Array.from({ length: EVENTS }, (_, i) => publish(ob, tenant, targetIds[i % 2])));
    await eventually(() => rx.received('/free').length >= EVENTS, { what: 'the control: all', timeoutMs: 20000 });
    await eventually(() => rx.received('/limited').length >= EVENTS, { what: 'limited: all', timeoutMs: 30000 });
    await sleep(300);
    for (const p of ['/limited', '/free']) {
      assert.deepEqual(rx.received(p).map((w) => w.headers['webhook-id']).sort(), [...ids].sort(), `${p}: every event once`);
    }
    const limited = rx.received('/limited').map((w) => w.arrivedAt);
    const free = rx.received('/free').map((w) => w.arrivedAt);
    const span = (t) => Math.max(...t) - Math.min(...t);
    const sent = (await attemptsOf(ob, erp.key, limitedSub.id)).map((a) => a.at);
    assert.equal(sent.length, EVENTS, 'one attempt per event');
    const worstSent = maxInWindow(sent);
    const worst = maxInWindow(limited);
    const freeBurst = maxInWindow(free);
    console.log(`rate limit ${LIMIT}/s: limited: at most ${worstSent} sent and ${worst} received in a second, ${span(limited)} ms for ${EVENTS}; control: ${freeBurst} in its busiest second, ${span(free)} ms`);
    assert.ok(worstSent <= LIMIT + 1, `${worstSent} attempts started in one second at ${LIMIT}/s`);
    assert.ok(worst <= LIMIT + LIMIT / 2, `${worst} deliveries received in one second at ${LIMIT}/s`);
    assert.ok(freeBurst > LIMIT + 1, `the control got only ${freeBurst} in its busiest second: the arrivals were spread before the limiter`);
    assert.ok(Math.max(...free) < Math.max(...limited) - 1000, 'the control finished no sooner than the limited subscription');
  });

  // A fraction is a rate too (0.5: one request every 2 s), and the answers say so as the OpenAPI
  // document does (every answer of this suite is checked against it).
  test('rateLimitPerSecond takes a fraction, on create and on update', async () => {
    const { erp } = await seedTargets(ob);
    const created = await ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url: rx.url('/fraction'), eventTypes: ['*'], rateLimitPerSecond: 0.5 } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.rateLimitPerSecond, 0.5);
    const patched = await ob.call('PATCH', `/v1/subscriptions/${created.body.subscriptionId}`, { token: erp.key, body: { rateLimitPerSecond: 2.5 } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.rateLimitPerSecond, 2.5);
    for (const bad of [0, -1, 1e7, 'fast']) {
      const r = await ob.call('PATCH', `/v1/subscriptions/${created.body.subscriptionId}`, { token: erp.key, body: { rateLimitPerSecond: bad } });
      assert.equal(r.status, 422, `${bad}: ${r.text}`);
    }
  });
});
