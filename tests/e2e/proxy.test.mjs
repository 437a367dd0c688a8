// --proxy (CONTRACT §12): every delivery goes through the egress proxy. The proxy here is a plain
// HTTP forward proxy on 127.0.0.1 (absolute-form requests, as curl sends them to an http://
// proxy) that forwards to the receiver and counts what it carried. The environment's proxy
// variables are ignored either way (docs/CONFIGURATION.md): libcurl would otherwise follow
// http_proxy, HTTPS_PROXY or ALL_PROXY without --proxy, and no_proxy with it.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';
import { Outbound, Receiver, eventually, seedOneTarget, serveDuring, subscribe } from './harness.mjs';

const carried = [];
const proxy = http.createServer((req, res) => {
  let target;
  try {
    target = new URL(req.url);  // absolute form: http://127.0.0.1:PORT/path
  } catch {
    res.writeHead(400).end();
    return;
  }
  carried.push({ method: req.method, url: req.url, eventId: req.headers['webhook-id'] });
  const upstream = http.request(
    { host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers },
    (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    },
  );
  upstream.on('error', () => res.writeHead(502).end());
  req.pipe(upstream);
});
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
after(() => proxy.close());

const proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
// Its environment exempts every host from proxies (no_proxy=*): --proxy still carries everything.
const ob = new Outbound({ args: ['--proxy', proxyUrl], env: { no_proxy: '*', NO_PROXY: '*' } });
const rx = new Receiver();
let tenant, erp, targetId;
serveDuring(ob, rx, async () => {
  ({ tenant, erp, targetId } = await seedOneTarget(ob));
});

// A second server without --proxy, its environment naming the proxy in every variable curl reads.
const envProxy = { http_proxy: proxyUrl, HTTP_PROXY: proxyUrl, https_proxy: proxyUrl, HTTPS_PROXY: proxyUrl, all_proxy: proxyUrl, ALL_PROXY: proxyUrl };
const direct = new Outbound({ env: envProxy });
const rxDirect = new Receiver();
let directSeed;
serveDuring(direct, rxDirect, async () => {
  directSeed = await seedOneTarget(direct);
});

test('--proxy: every delivery goes through the proxy and arrives signed', async () => {
  const sub = await subscribe(ob, erp, rx.url('/via-proxy'), { eventTypes: ['appointment.started'] });
  const ids = [];
  for (let n = 1; n <= 3; n++) {
    const r = await ob.call('POST', '/v1/events', {
      token: tenant.key,
      body: { eventType: 'appointment.started', targetId, occurredAtUtc: '2026-06-25T14:02:00Z', data: { appointmentId: n, startedAtUtc: '2026-06-25T14:02:00Z' } },
    });
    assert.equal(r.status, 202, r.text);
    ids.push(r.body.eventId);
  }
  await eventually(() => rx.received('/via-proxy').length >= 3, { what: 'three webhooks' });
  assert.equal(rx.verify('/via-proxy', sub.secret).length, 3, 'every webhook verifies');
  const through = carried.filter((c) => c.url.endsWith('/via-proxy')).map((c) => c.eventId).sort();
  assert.deepEqual(through, [...ids].sort(), 'each webhook went through the proxy');
  assert.ok(carried.every((c) => c.method === 'POST'));
});

test('without --proxy, deliveries go direct even with a proxy in the environment', async () => {
  const { tenant: t, erp: client, targetId: target } = directSeed;
  const sub = await subscribe(direct, client, rxDirect.url('/direct'), { eventTypes: ['appointment.started'] });
  const r = await direct.call('POST', '/v1/events', {
    token: t.key,
    body: { eventType: 'appointment.started', targetId: target, occurredAtUtc: '2026-06-25T14:02:00Z', data: { appointmentId: 1, startedAtUtc: '2026-06-25T14:02:00Z' } },
  });
  assert.equal(r.status, 202, r.text);
  await eventually(() => rxDirect.received('/direct').length >= 1, { what: 'the webhook, sent direct' });
  assert.equal(rxDirect.verify('/direct', sub.secret).length, 1, 'it verifies');
  assert.deepEqual(carried.filter((c) => c.url.endsWith('/direct')), [], 'the proxy carried none of it');
});
