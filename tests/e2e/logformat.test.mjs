// --log-format json (CONTRACT §13): at the most verbose level, every line a real run writes is
// one JSON object with ts, level and msg; attempts carry subscriptionId, eventId and deliveryId;
// no secret of the run appears anywhere in the log.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OPERATOR_TOKEN, Outbound, Receiver, eventually, seedOneTarget, subscribe } from './harness.mjs';

test('every log line is a JSON object with ts, level, msg and the call\'s fields; no secrets', async () => {
  const ob = new Outbound({ args: ['--log-format', 'json', '--log-level', 'trace'] });
  const rx = new Receiver();
  await rx.start();
  await ob.start();
  try {
    const { tenant, erp, targetId } = await seedOneTarget(ob);
    const accessSecret = 'gate-code-4711-secret';
    const notes = 'internal-note-do-not-log';
    const loc = await ob.call('PUT', '/v1/locations/1', { token: tenant.key, body: { customerId: 1, name: 'L', accessSecret, internalNotes: notes, externalIds: {} } });
    assert.ok(loc.status < 300, loc.text);
    const headerValue = 'Bearer receiver-token-do-not-log';
    const ok = await subscribe(ob, erp, rx.url('/ok'), { headers: { Authorization: headerValue } });
    const down = await subscribe(ob, erp, rx.url('/down'));
    rx.decide('/down', () => 500);
    const r = await ob.call('POST', '/v1/events', {
      token: tenant.key,
      body: { eventType: 'appointment.started', targetId, occurredAtUtc: '2026-06-25T14:02:00Z', data: { appointmentId: 1, startedAtUtc: '2026-06-25T14:02:00Z' } },
    });
    assert.equal(r.status, 202, r.text);
    const eventId = r.body.eventId;
    await eventually(async () => {
      const v = await ob.call('GET', `/v1/events/${eventId}`, { token: tenant.key });
      return v.body.deliveries?.every((d) => d.status === 'succeeded' || d.status === 'dead');
    }, { what: 'both deliveries finished' });
    const stop = await ob.stop();
    assert.equal(stop.code, 0);

    const lines = ob.log.split('\n').filter((l) => l !== '');
    assert.ok(lines.length >= 10, `a verbose run logs (${lines.length} lines)`);
    const records = lines.map((line) => {
      let o;
      assert.doesNotThrow(() => { o = JSON.parse(line); }, `not JSON: ${line}`);
      assert.equal(typeof o, 'object');
      assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
      assert.ok(['trace', 'debug', 'info', 'warning', 'error', 'critical'].includes(o.level), line);
      assert.equal(typeof o.msg, 'string', line);
      return o;
    });
    assert.ok(records.some((o) => o.level === 'debug' || o.level === 'trace'), 'the verbose levels are on');
    assert.ok(records.some((o) => /listening on http/.test(o.msg)));
    // Each attempt is a line with the ids an operator searches by.
    for (const sub of [ok, down]) {
      const attempts = records.filter((o) => o.subscriptionId === sub.id && o.eventId === eventId);
      assert.ok(attempts.length >= 1, `an attempt line for subscription ${sub.id}`);
      for (const a of attempts) assert.match(a.deliveryId, /^del_[0-9A-HJKMNP-TV-Z]{26}$/);
    }
    // No secret of this run is in the log.
    for (const secret of [ok.secret, down.secret, tenant.key, erp.key, OPERATOR_TOKEN, accessSecret, notes, headerValue]) {
      assert.ok(!ob.log.includes(secret), `the log holds a secret: ${secret.slice(0, 6)}...`);
    }
    // Nor the base64 of a signing secret (the part after whsec_).
    assert.ok(!ob.log.includes(ok.secret.slice(6)));
  } finally {
    await ob.cleanup();
    await rx.stop();
  }
});
