// TLS to receivers (CONTRACT.md §6, §7): certificates are verified; --ca-file makes a private CA
// trusted; an untrusted certificate is a failed attempt (a `tls_error` in the delivery log) that
// is retried like any other failure. The CA and the receiver's certificate are made at test time
// with the openssl command line in a temporary directory.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, Outbound, Receiver, eventually, publishStarted, seedOneTarget } from './harness.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'outbound-tls-'));
const f = (name) => path.join(dir, name);

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

// A self-signed CA: `name`.pem / `name`.key.
function makeCa(name) {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '2', '-subj', `/CN=Outbound test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

// A server certificate for 127.0.0.1 and localhost signed by `ca`.
function makeServerCert(ca) {
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(f('server.ext'), [
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
  ].join('\n') + '\n');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f(`${ca}.pem`), '-CAkey', f(`${ca}.key`),
    '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('server.ext'));
}

makeCa('ca');
makeCa('otherca');
makeServerCert('ca');

const rx = new Receiver({ tls: { key: readFileSync(f('server.key')), cert: readFileSync(f('server.pem')) } });
const servers = [];

// A server with its own tenant, client and a subscription to `p` on the https receiver.
async function setUp(args, p, host = '127.0.0.1', env = {}) {
  const ob = new Outbound({ args, env });
  servers.push(ob);
  await ob.start();
  const { tenant, erp, targetId } = await seedOneTarget(ob);
  const url = rx.url(p).replace('127.0.0.1', host);
  const s = await ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url, eventTypes: ['appointment.*'] } });
  assert.equal(s.status, 201, s.text);
  const publish = () => publishStarted(ob, tenant.key, targetId, 1);
  return { ob, tenant, erp, sub: { id: s.body.subscriptionId, secret: s.body.secret }, publish };
}

// A receiver that speaks HTTP/2 only: libcurl offers h2 by ALPN over TLS, so a receiver that
// takes it gets every delivery over HTTP/2 (docs/RECEIVING.md).
const rxH2 = new Receiver({ tls: { key: readFileSync(f('server.key')), cert: readFileSync(f('server.pem')) }, http2: true });

before(async () => {
  await rx.start();
  await rxH2.start();
});

after(async () => {
  for (const ob of servers) await ob.cleanup();
  await rx.stop();
  await rxH2.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('--ca-file: deliveries to a receiver with a certificate of that CA succeed and verify', async () => {
  for (const [p, host] of [['/trusted-ip', '127.0.0.1'], ['/trusted-name', 'localhost']]) {
    const { ob, erp, sub, publish } = await setUp(['--ca-file', f('ca.pem')], p, host);
    const eventId = await publish();
    await eventually(() => rx.received(p).length >= 1, { what: `delivery over TLS to ${host}` });
    const got = rx.verify(p, sub.secret);
    assert.equal(got.length, 1);
    assert.equal(got[0].payload.eventId, eventId);
    const view = await eventually(async () => {
      const r = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
      return r.body.deliveries?.[0]?.status === 'succeeded' && r.body;
    }, { what: 'succeeded status' });
    assert.equal(view.deliveries[0].attempts.length, 1);
    assert.equal(view.deliveries[0].attempts[0].httpStatus, 200);
    assert.equal(view.deliveries[0].attempts[0].error, null);
  }
});

// SSLKEYLOGFILE makes libcurl write every TLS connection's secrets to that file (a debugging aid
// of browsers and curl); with them, anyone who reads it decrypts each payload and signature. The
// server ignores it, and says so in its log.
test('SSLKEYLOGFILE in the environment: no TLS secret is written, the log says it is ignored', async () => {
  const { ob, sub, publish } = await setUp(['--ca-file', f('ca.pem')], '/keylog', '127.0.0.1', { SSLKEYLOGFILE: f('keys.log') });
  await publish();
  await eventually(() => rx.received('/keylog').length >= 1, { what: 'delivery over TLS' });
  assert.equal(rx.verify('/keylog', sub.secret).length, 1);
  assert.equal(existsSync(f('keys.log')) ? readFileSync(f('keys.log'), 'utf8') : '', '', 'no TLS secret in the key log file');
  assert.match(ob.log, /SSLKEYLOGFILE/, 'the log says the variable is ignored');
});

for (const [name, args] of [
  ['without --ca-file (system store only)', []],
  ['with --ca-file of another CA', ['--ca-file', f('otherca.pem')]],
]) {
  test(`${name}: the untrusted certificate is a tls_error and the attempt is retried`, async () => {
    const p = `/untrusted-${args.length}`;
    const { ob, erp, sub, publish } = await setUp(args, p);
    const eventId = await publish();
    // The default harness schedule is 0s,200ms,200ms: three attempts, then dead.
    const log = await eventually(async () => {
      const r = await ob.call('GET', `/v1/subscriptions/${sub.id}/deliveries`, { token: erp.key });
      return r.body.data?.length >= 2 && r.body.data;
    }, { what: 'two attempts in the delivery log' });
    const attempts = [...log].reverse();
    assert.deepEqual(attempts.slice(0, 2).map((a) => a.attempt), [1, 2], 'attempt 2 exists: retried');
    for (const a of attempts) {
      assert.equal(a.eventId, eventId);
      assert.equal(a.httpStatus, null);
      if (a.attempt === 1) console.log(`attempt 1 error: ${a.error}`);
      assert.match(a.error, /^tls_error|certificate/i, `attempt ${a.attempt}: ${a.error}`);
    }
    // The handshake failed, so no request ever reached the receiver.
    assert.equal(rx.received(p).length, 0);
    const dead = await eventually(async () => {
      const r = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
      return r.body.deliveries?.[0]?.status === 'dead' && r.body.deliveries[0];
    }, { what: 'dead after the schedule' });
    assert.equal(dead.attempts.length, 3);
  });
}

// libcurl reads --ca-file at every TLS connect: a file it cannot load would fail every HTTPS
// delivery, to any receiver. So the server refuses it at start-up, as any setting that does not
// parse (docs/CONFIGURATION.md: exit 2, the message names the setting).
test('--ca-file that is missing or holds no certificate: refused at start-up', () => {
  writeFileSync(f('notpem.txt'), 'not a certificate\n');
  for (const bad of [f('missing.pem'), f('notpem.txt'), dir]) {
    for (const how of [['--ca-file', bad], []]) {
      const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${f('refused.db')}`, ...how], {
        env: how.length ? process.env : { ...process.env, OUTBOUND_CA_FILE: bad },
        encoding: 'utf8',
        timeout: 20000,
      });
      assert.equal(r.status, 2, `${bad} ${how.length ? 'flag' : 'env'}: exit ${r.status}\n${r.stderr}`);
      assert.match(r.stderr, /ca-file/, r.stderr);
    }
  }
});

test('an HTTP/2 receiver: webhooks arrive signed over HTTP/2, and its Retry-After (a lower-case header) is honoured', async () => {
  // The schedule's next delay is 200 ms; its longest, 5 s, caps a Retry-After (CONTRACT §6).
  const ob = new Outbound({ args: ['--ca-file', f('ca.pem')], retrySchedule: '0s,200ms,5s' });
  servers.push(ob);
  await ob.start();
  const { tenant, erp, targetId } = await seedOneTarget(ob);
  const p = '/h2';
  rxH2.script(p, [{ status: 503, headers: { 'retry-after': '2' } }, 200]);
  const s = await ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url: rxH2.url(p), eventTypes: ['appointment.*'] } });
  assert.equal(s.status, 201, s.text);
  const eventId = await publishStarted(ob, tenant.key, targetId, 1);
  await eventually(() => rxH2.received(p).length >= 2, { what: 'two attempts over HTTP/2' });
  const got = rxH2.verify(p, s.body.secret);
  assert.deepEqual(got.map((g) => g.payload.eventId), [eventId, eventId]);
  assert.deepEqual(rxH2.received(p).map((r) => r.httpVersion), ['2.0', '2.0']);
  const [first, second] = rxH2.received(p);
  // Only the answer's Retry-After makes the next delay 2 s.
  assert.ok(second.arrivedAt - first.at >= 1900, `the retry came ${second.arrivedAt - first.at} ms after the 503`);
  const view = await eventually(async () => {
    const r = await ob.call('GET', `/v1/events/${eventId}`, { token: erp.key });
    return r.body.deliveries?.[0]?.status === 'succeeded' && r.body;
  }, { what: 'succeeded status' });
  assert.deepEqual(view.deliveries[0].attempts.map((a) => a.httpStatus), [503, 200]);
});
