// The example receivers of examples/ (Node.js with `standardwebhooks`, Python with the standard
// library only) against the real service: each verifies real webhooks, processes each event once
// (a redelivered event is recognised as a duplicate by its eventId), and refuses a forged one.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Outbound, Receiver, eventually, publishStarted, seedOneTarget, serveDuring } from './harness.mjs';

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples');
const ob = new Outbound();
const rx = new Receiver();
let tenant, erp, targetId;
serveDuring(ob, rx, async () => {
  ({ tenant, erp, targetId } = await seedOneTarget(ob));
});

const receivers = {
  node: { cmd: process.execPath, args: [path.join(examples, 'node/receiver.mjs')], needs: path.join(examples, 'node/node_modules/standardwebhooks') },
  python: { cmd: 'python3', args: [path.join(examples, 'python/receiver.py')] },
};

const publish = (n) => publishStarted(ob, tenant.key, targetId, n);

for (const [name, rcv] of Object.entries(receivers)) {
  test(`examples/${name}: verifies, processes each event once, refuses a forged request`, async (t) => {
    if (rcv.needs) assert.ok(existsSync(rcv.needs), `${rcv.needs} is missing: scripts/setup.sh installs it`);
    const s = await ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url: 'http://127.0.0.1:9/unused', eventTypes: ['appointment.*'] } });
    assert.equal(s.status, 201, s.text);
    const sub = s.body.subscriptionId;
    const child = spawn(rcv.cmd, rcv.args, { env: { ...process.env, WEBHOOK_SECRET: s.body.secret, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    t.after(() => child.kill('SIGTERM'));
    const lines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const base = await eventually(() => lines().find((l) => l.listening)?.listening, { what: `${name} receiver to listen (stderr: ${err})` });
    const p = await ob.call('PATCH', `/v1/subscriptions/${sub}`, { token: erp.key, body: { url: `${base}hook` } });
    assert.equal(p.status, 200, p.text);

    const ids = [await publish(1), await publish(2)];
    await eventually(() => ids.every((id) => lines().some((l) => l.processed === id)), { what: 'both processed' });
    // A second delivery of the same event (redeliver) is recognised and not processed again.
    const rd = await ob.call('POST', `/v1/events/${ids[0]}/redeliver`, { token: erp.key, body: { subscriptionId: sub } });
    assert.equal(rd.status, 202, rd.text);
    await eventually(() => lines().some((l) => l.duplicate === ids[0]), { what: 'the duplicate recognised' });
    assert.equal(lines().filter((l) => l.processed === ids[0]).length, 1, 'processed once');
    // Outbound saw 2xx answers for all three.
    await eventually(async () => {
      const v = await ob.call('GET', `/v1/subscriptions/${sub}/deliveries?status=succeeded`, { token: erp.key });
      return v.body.data?.length === 3;
    }, { what: 'three succeeded attempts' });

    // Forged: a real webhook's headers with another body; and a stale timestamp.
    const forged = await fetch(`${base}hook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': 'evt_forged', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
      body: JSON.stringify({ eventId: 'evt_forged', eventType: 'appointment.started', deliveryId: 'del_x' }),
    });
    assert.equal(forged.status, 401);
    await eventually(() => lines().some((l) => l.refused === 'evt_forged'), { what: 'the refusal logged' });
    assert.ok(!lines().some((l) => l.processed === 'evt_forged'), 'a forged event is never processed');
  });
}
