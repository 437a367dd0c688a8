// The command-line tools (docs/CLI.md) against the real service: `outbound ctl` makes a tenant,
// a client and its key, lists, tails, redelivers and recovers; `outbound listen` receives real
// webhooks, verifies them with the subscription's secret, prints them, and refuses forged ones.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { BIN, OPERATOR_TOKEN, Outbound, Receiver, eventually, importTargets, publishStarted, serveDuring, sleep } from './harness.mjs';

const ob = new Outbound();
const rx = new Receiver();
serveDuring(ob, rx);

// One `outbound ctl` run; its key in the environment (as docs/CLI.md advises), not in argv.
function ctl(key, ...args) {
  const r = spawnSync(BIN, ['ctl', '--url', ob.base, ...args], {
    env: { ...process.env, OUTBOUND_KEY: key },
    encoding: 'utf8',
    timeout: 60000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// The same without blocking this process (whose receiver must keep answering meanwhile).
function ctlAsync(key, ...args) {
  return new Promise((resolve) => {
    const child = spawn(BIN, ['ctl', '--url', ob.base, ...args], { env: { ...process.env, OUTBOUND_KEY: key }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

function ok(r) {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.out}\nstderr: ${r.err}`);
  return r.out;
}

// A long-running child whose stdout is collected as it comes.
function startChild(args, env = {}) {
  const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { child, out: '', err: '' };
  child.stdout.on('data', (d) => (state.out += d));
  child.stderr.on('data', (d) => (state.err += d));
  return state;
}

async function stopChild(state) {
  if (state.child.exitCode !== null) return;
  const exited = new Promise((r) => state.child.once('exit', r));
  state.child.kill('SIGTERM');
  await exited;
}

let tenantKey, clientId, clientKey, targetId;

test('ctl: a tenant, a client and its key, made from the command line; keys shown once and never logged', async () => {
  const t = ok(ctl(OPERATOR_TOKEN, 'tenants', 'create', 'CLI tenant'));
  tenantKey = /tenant key \(shown this once\): (\S+)/.exec(t)?.[1];
  assert.match(tenantKey ?? '', /^obt_/, t);
  const c = ok(ctl(tenantKey, 'clients', 'create', 'ERP', '--source-system', 'logistics_erp'));
  clientId = Number(/client (\d+) created/.exec(c)?.[1]);
  assert.ok(clientId > 0, c);
  const k = ok(ctl(tenantKey, 'clients', 'key', String(clientId)));
  clientKey = /\(shown this once\): (\S+)/.exec(k)?.[1];
  assert.match(clientKey ?? '', /^obc_/, k);
  assert.match(ok(ctl(tenantKey, 'clients', 'list')), new RegExp(`^${clientId}  ERP  source system logistics_erp$`, 'm'));
  // The key works against the API.
  const me = await ob.call('GET', '/v1/subscriptions', { token: clientKey });
  assert.equal(me.status, 200, me.text);
  assert.ok(!ob.log.includes(tenantKey.slice(4)) && !ob.log.includes(clientKey.slice(4)), 'no key in the log');

  [targetId] = await importTargets(ob, tenantKey, clientKey);
});

const publish = (n) => publishStarted(ob, tenantKey, targetId, n);

test('listen verifies and prints real webhooks, refuses forged ones; ctl lists, tails, follows and redelivers', async (t) => {
  assert.ok(clientKey, 'the first test made the client');
  // The integrator's order: subscribe, start the listener with the secret, point the URL at it.
  const s = await ob.call('POST', '/v1/subscriptions', { token: clientKey, body: { url: 'http://127.0.0.1:9/unused', eventTypes: ['appointment.*'] } });
  assert.equal(s.status, 201, s.text);
  const sub = s.body.subscriptionId;
  const listen = startChild(['listen', '--port', '0'], { OUTBOUND_LISTEN_SECRET: s.body.secret });
  t.after(() => stopChild(listen));
  const port = await eventually(() => /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(listen.out)?.[1], { what: 'listen to start' });
  const url = `http://127.0.0.1:${port}/hook`;
  const p = await ob.call('PATCH', `/v1/subscriptions/${sub}`, { token: clientKey, body: { url } });
  assert.equal(p.status, 200, p.text);

  const first = await publish(1);
  await eventually(() => listen.out.includes(first), { what: 'the webhook at outbound listen' });
  const line = listen.out.split('\n').find((l) => l.includes(first));
  assert.match(line, new RegExp(`  verified  appointment\\.started  ${first}  del_\\w+  attempt 1  answered 204$`));
  assert.ok(listen.out.includes(`"eventId":"${first}"`), 'the body is printed as received');

  // A forged request (the right shape, another key) is refused, 401, and said so.
  const forged = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': 'evt_forged', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
    body: '{"eventId":"evt_forged"}',
  });
  assert.equal(forged.status, 401);
  await eventually(() => /REFUSED  invalid_signature: .*webhook-id evt_forged/.test(listen.out), { what: 'the refusal printed' });
  assert.ok(!listen.out.includes('"eventId":"evt_forged"'), 'a forged body is not printed as a webhook');

  // The delivery log from the command line.
  assert.match(ok(ctl(clientKey, 'subscriptions', 'list')), new RegExp(`^${sub}  client ${clientId}  enabled   ${url.replace(/[./]/g, '\\$&')}`, 'm'));
  await eventually(() => ctl(clientKey, 'deliveries', 'tail', String(sub)).out.includes(first), { what: 'the attempt in the log' });
  assert.match(ok(ctl(clientKey, 'deliveries', 'tail', String(sub))), new RegExp(`  succeeded  appointment\\.started  ${first}  attempt 1  http 204`));

  // Following: an event published while `tail --follow` runs shows up in its output.
  const follow = startChild(['ctl', '--url', ob.base, 'deliveries', 'tail', String(sub), '--follow', '--interval-ms', '200', '--for', '60'], { OUTBOUND_KEY: clientKey });
  t.after(() => stopChild(follow));
  await eventually(() => follow.out.includes(first), { what: 'tail to print the existing attempt' });
  const second = await publish(2);
  await eventually(() => follow.out.includes(second), { what: 'tail --follow to print the new attempt' });
  assert.equal(follow.out.split('\n').filter((l) => l.includes(first)).length, 1, 'each attempt printed once');

  // Redeliver from the command line: the same eventId reaches the listener again.
  ok(ctl(clientKey, 'redeliver', first, '--subscription', String(sub)));
  await eventually(() => listen.out.split('\n').filter((l) => l.includes(`  ${first}  `)).length === 2, { what: 'the redelivered webhook' });

  // Errors are the API's, in one line, exit 1.
  const missing = ctl(clientKey, 'subscriptions', 'get', '999999');
  assert.equal(missing.code, 1);
  assert.match(missing.err, /HTTP 404 not_found/);
  const bad = ctl(clientKey, 'redeliver', first, '--subscription', 'x');
  assert.equal(bad.code, 2);
  // Bad arguments are 2 whoever finds them (CLI11's own codes were 105-109), --help is 0.
  for (const args of [['subscriptions', 'get'], ['recover', String(sub)], ['subscriptions', 'list', 'extra'], ['nosuchcommand']]) {
    const r = ctl(clientKey, ...args);
    assert.equal(r.code, 2, `ctl ${args.join(' ')}: exit ${r.code}\n${r.err}`);
  }
  assert.equal(ctl(clientKey, '--help').code, 0);
  const listenBad = spawnSync(BIN, ['listen', '--status', '99'], { encoding: 'utf8', timeout: 20000 });
  assert.equal(listenBad.status, 2, listenBad.stderr);
});

test('ctl recover re-queues dead deliveries and follows them to the end', async () => {
  assert.ok(clientKey, 'the first test made the client');
  const s = await ob.call('POST', '/v1/subscriptions', { token: clientKey, body: { url: rx.url('/recover'), eventTypes: ['appointment.*'] } });
  assert.equal(s.status, 201, s.text);
  const sub = s.body.subscriptionId;
  rx.script('/recover', [500, 500, 500, 500, 500, 500]);
  const since = new Date(Date.now() - 1000).toISOString();
  const ids = [await publish(10), await publish(11)];
  await eventually(async () => {
    const all = await Promise.all(ids.map((id) => ob.call('GET', `/v1/events/${id}`, { token: clientKey })));
    return all.every((v) => v.body.deliveries?.find((d) => d.subscriptionId === sub)?.status === 'dead');
  }, { what: 'both dead' });
  // Asynchronously: the receiver in this process answers the recovered deliveries meanwhile.
  const r = await ctlAsync(clientKey, 'recover', String(sub), '--since', since, '--wait', '60');
  const out = ok(r);
  assert.match(out, /^recover: 2 deliveries re-queued$/m);
  // The progress line follows the subscription's backlog to the end.
  assert.match(out, /^recover: 2 re-queued, [0-2] still waiting$/m);
  assert.match(out, /^recover: done$/m);
  // Three failed attempts each (the harness's schedule), then one more each after recover.
  await eventually(() => rx.received('/recover').length === 8, { what: 'both sent again' });
  for (const id of ids) assert.equal(rx.received('/recover').filter((q) => q.headers['webhook-id'] === id).length, 4, id);
});
// The delivery log lists attempts as they are recorded, and a slow attempt is recorded after a
// quick one that started later: `tail --follow` prints both, each once. (It asked only for
// attempts that started after the newest one seen, and never printed the slow one.)
test('ctl deliveries tail --follow prints a slow attempt recorded after a quicker, later one', async (t) => {
  const s = await ob.call('POST', '/v1/subscriptions', { token: clientKey, body: { url: rx.url('/slow-first'), eventTypes: ['appointment.*'], maxConcurrency: 4 } });
  assert.equal(s.status, 201, s.text);
  const sub = s.body.subscriptionId;
  rx.script('/slow-first', [{ status: 200, delayMs: 2500 }, 200]);
  const follow = startChild(['ctl', '--url', ob.base, 'deliveries', 'tail', String(sub), '--follow', '--interval-ms', '200', '--for', '60'], { OUTBOUND_KEY: clientKey });
  t.after(() => stopChild(follow));
  await sleep(500);  // the first poll found nothing yet
  const slow = await publish(20);
  await eventually(() => rx.received('/slow-first').length >= 1, { what: 'the slow attempt under way' });
  const quick = await publish(21);
  await eventually(() => follow.out.includes(quick), { what: 'the quick attempt printed' });
  await eventually(() => follow.out.includes(slow), { what: 'the slow attempt printed', timeoutMs: 10000 });
  await sleep(600);  // a few more polls: nothing printed twice
  for (const id of [slow, quick]) assert.equal(follow.out.split('\n').filter((l) => l.includes(id)).length, 1, id);
});

// Every ctl command has --json (docs/CLI.md): recover prints the API's answer as it is, and does
// not follow (its progress lines are not the API's).
test('ctl recover --json prints the API answer', async () => {
  const s = await ob.call('POST', '/v1/subscriptions', { token: clientKey, body: { url: rx.url('/recover-json'), eventTypes: ['appointment.*'] } });
  assert.equal(s.status, 201, s.text);
  const r = await ctlAsync(clientKey, 'recover', String(s.body.subscriptionId), '--since', new Date(Date.now() - 1000).toISOString(), '--json');
  const out = ok(r);
  assert.deepEqual(JSON.parse(out), { subscriptionId: s.body.subscriptionId, recovered: 0 });
});
