// SSRF guard (CONTRACT.md §7 --allow-private-networks): without the flag, subscription URLs must
// be https and must not point at loopback, private, link-local (cloud metadata), CGNAT,
// multicast or unspecified addresses; and the check is made again at connect time, so that a
// name that resolves to such an address (DNS rebinding) is refused when the dispatcher connects.
// The connect-time case uses the test-only --debug-resolve flag (curl's CURLOPT_RESOLVE) to pin
// a public-looking name to 127.0.0.1 without touching the system resolver. The receiver there is
// an https one with a certificate for that name (made with openssl at test time, its CA given
// with --ca-file), so that the very same URL is delivered to when the guard is off: the control
// proves that "nothing reached the receiver" is the guard's doing and not a failed handshake.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Outbound, Receiver, eventually, publishStarted, seedOneTarget } from './harness.mjs';

const REBIND_HOST = 'rebind.test';
const certDir = mkdtempSync(path.join(tmpdir(), 'outbound-ssrf-'));
const f = (name) => path.join(certDir, name);
function openssl(...args) {
  execFileSync('openssl', args, { cwd: certDir, stdio: ['ignore', 'pipe', 'pipe'] });
}
// A CA of the test's own, and a certificate for REBIND_HOST signed by it.
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
  '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Outbound SSRF test CA',
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
  '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', `/CN=${REBIND_HOST}`);
writeFileSync(f('server.ext'), [
  `subjectAltName=DNS:${REBIND_HOST}`,
  'basicConstraints=CA:FALSE',
  'keyUsage=critical,digitalSignature',
  'extendedKeyUsage=serverAuth',
].join('\n') + '\n');
openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
  '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('server.ext'));

const rx = new Receiver({ tls: { key: readFileSync(f('server.key')), cert: readFileSync(f('server.pem')) } });
const servers = [];

async function setUp(options) {
  const ob = new Outbound(options);
  servers.push(ob);
  await ob.start();
  const { tenant, erp, targetId } = await seedOneTarget(ob);
  const subscribe = (url) => ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url, eventTypes: ['appointment.*'] } });
  const publish = () => publishStarted(ob, tenant.key, targetId, 1);
  return { ob, tenant, erp, subscribe, publish };
}

before(async () => {
  await rx.start();
});

after(async () => {
  for (const ob of servers) await ob.cleanup();
  await rx.stop();
  rmSync(certDir, { recursive: true, force: true });
});

// The same https URL in both tests below: a name pinned to the receiver on 127.0.0.1, whose
// certificate the servers trust (--ca-file).
function rebindSetUp(allowPrivateNetworks) {
  const port = new URL(rx.base).port;
  return {
    url: `https://${REBIND_HOST}:${port}/rebind`,
    options: { allowPrivateNetworks, args: ['--debug-resolve', `${REBIND_HOST}:${port}:127.0.0.1`, '--ca-file', f('ca.pem')] },
  };
}

const REFUSED = [
  ['plain http', 'http://hooks.example.com/x'],
  ['plain http to a literal address', 'http://93.184.216.34/x'],
  ['loopback', 'https://127.0.0.1/'],
  ['loopback, other address', 'https://127.10.20.30:8443/x'],
  ['loopback, short form', 'https://127.1/'],
  ['loopback, decimal form', 'https://2130706433/'],
  ['loopback, hex form', 'https://0x7f.0.0.1/'],
  ['10/8', 'https://10.0.0.1/'],
  ['172.16/12', 'https://172.16.5.4/'],
  ['172.31 (end of 172.16/12)', 'https://172.31.255.254/'],
  ['192.168/16', 'https://192.168.1.1/'],
  ['link-local / cloud metadata', 'https://169.254.169.254/latest/meta-data/'],
  ['CGNAT 100.64/10', 'https://100.64.0.1/'],
  ['CGNAT, end of range', 'https://100.127.255.254/'],
  ['multicast', 'https://224.0.0.1/'],
  ['broadcast', 'https://255.255.255.255/'],
  ['0.0.0.0/8', 'https://0.0.0.0/'],
  ['0.0.0.0/8, other address', 'https://0.1.2.3/'],
  ['IPv6 loopback', 'https://[::1]/'],
  ['IPv6 unspecified', 'https://[::]/'],
  ['IPv6 unique local fc00::/7', 'https://[fd12:3456:789a::1]/'],
  ['IPv6 link-local fe80::/10', 'https://[fe80::1]/'],
  ['IPv6 multicast', 'https://[ff02::1]/'],
  ['IPv4-mapped loopback', 'https://[::ffff:127.0.0.1]/'],
  ['IPv4-mapped metadata', 'https://[::ffff:169.254.169.254]/'],
  ['IPv4-mapped private, hex form', 'https://[::ffff:a00:1]/'],
  ['localhost', 'https://localhost/'],
  ['localhost with a trailing dot', 'https://localhost./'],
  ['a name under localhost', 'https://api.localhost/'],
  ['LOCALHOST in capitals', 'https://LOCALHOST:8443/'],
];

const ACCEPTED = [
  ['a public name', 'https://hooks.example.com/ordinavo'],
  ['a public address', 'https://93.184.216.34/x'],
  ['a public IPv6 address', 'https://[2606:2800:220:1:248:1893:25c8:1946]/x'],
  ['just outside 172.16/12', 'https://172.32.0.1/'],
  ['just outside CGNAT', 'https://100.128.0.1/'],
];

test('without --allow-private-networks: private, loopback, metadata, CGNAT, multicast and http URLs are 422 url_not_allowed', async () => {
  const { subscribe } = await setUp({ allowPrivateNetworks: false });
  const wrong = [];
  for (const [what, url] of REFUSED) {
    const r = await subscribe(url);
    const code = r.body?.error?.code;
    if (r.status !== 422 || code !== 'url_not_allowed') wrong.push(`${what} (${url}): ${r.status} ${code ?? r.text}`);
  }
  for (const [what, url] of ACCEPTED) {
    const r = await subscribe(url);
    if (r.status !== 201) wrong.push(`${what} (${url}) should be accepted: ${r.status} ${r.text}`);
  }
  assert.deepEqual(wrong, []);
});

test('PATCH to a private URL is refused like a create', async () => {
  const { ob, erp, subscribe } = await setUp({ allowPrivateNetworks: false });
  const ok = await subscribe('https://hooks.example.com/patched');
  assert.equal(ok.status, 201, ok.text);
  const r = await ob.call('PATCH', `/v1/subscriptions/${ok.body.subscriptionId}`, { token: erp.key, body: { url: 'https://169.254.169.254/' } });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.code, 'url_not_allowed');
  const g = await ob.call('GET', `/v1/subscriptions/${ok.body.subscriptionId}`, { token: erp.key });
  assert.equal(g.body.url, 'https://hooks.example.com/patched');
});

// Seen failing (the webhook reached the receiver, no private_address) when this test's server was
// started with --allow-private-networks.
test('DNS rebinding: a name that resolves to 127.0.0.1 is refused at connect time (private_address), and retried', async () => {
  const { url, options } = rebindSetUp(false);
  const { ob, erp, subscribe, publish } = await setUp(options);
  // The name is not checked against DNS when the subscription is made...
  const s = await subscribe(url);
  assert.equal(s.status, 201, s.text);
  const eventId = await publish();
  // ... but the address it resolves to is, when the dispatcher connects.
  const log = await eventually(async () => {
    const r = await ob.call('GET', `/v1/subscriptions/${s.body.subscriptionId}/deliveries`, { token: erp.key });
    return (r.body.data?.length >= 2 || rx.received('/rebind').length > 0) && r.body.data;
  }, { what: 'two refused attempts' });
  assert.equal(rx.received('/rebind').length, 0, 'nothing reached the private address');
  assert.ok(log.length >= 2);
  for (const a of log) {
    assert.equal(a.eventId, eventId);
    assert.equal(a.httpStatus, null);
    assert.equal(a.error, 'private_address');
  }
});

test('control: with --allow-private-networks the same https URL is delivered to', async () => {
  const { url, options } = rebindSetUp(true);
  const { ob, erp, subscribe, publish } = await setUp(options);
  const s = await subscribe(url);
  assert.equal(s.status, 201, s.text);
  const eventId = await publish();
  const mine = () => rx.received('/rebind').filter((w) => w.headers['webhook-id'] === eventId);
  await eventually(() => mine().length >= 1, { what: 'delivery through the pinned name' });
  // The outcome is recorded a moment after the receiver answered.
  const log = await eventually(async () => {
    const r = await ob.call('GET', `/v1/subscriptions/${s.body.subscriptionId}/deliveries`, { token: erp.key });
    return r.body.data?.length >= 1 && r.body.data;
  }, { what: 'the attempt recorded' });
  assert.equal(log[0].httpStatus, 200, JSON.stringify(log));
  assert.equal(log[0].error ?? null, null, JSON.stringify(log));
  const verified = rx.verify('/rebind', s.body.secret).filter((w) => w.payload.eventId === eventId);
  assert.equal(verified.length, 1);
});
