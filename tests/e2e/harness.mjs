// Test harness for Outbound's end-to-end tests: starts the real build/outbound binary on a
// temporary SQLite file (or a fresh PostgreSQL database: OUTBOUND_E2E_DB below), a real HTTP
// receiver on 127.0.0.1, and verifies every webhook with the public Standard Webhooks verifier
// (the `standardwebhooks` npm package, pinned by package-lock.json) — a client nobody here wrote.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { Conformance } from './openapi_conformance.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.OUTBOUND_BIN || path.resolve(here, '../../build/outbound');
export const OPERATOR_TOKEN = 'op-token-for-e2e-tests-0123456789';

// The store of every server: 'sqlite' (the default: a file in the instance's directory) or
// 'postgres' (OUTBOUND_E2E_DB=postgres: a database of its own per instance, created on the server
// whose postgres:// URL is in the file OUTBOUND_TEST_PG_DSN_FILE, which CTest's fixture `pg`
// writes). Tests skip what makes sense on one store only with `dbKind` (or `ob.dbKind`).
export const dbKind = process.env.OUTBOUND_E2E_DB || 'sqlite';
if (!['sqlite', 'postgres'].includes(dbKind)) throw new Error(`OUTBOUND_E2E_DB=${dbKind}: sqlite or postgres`);
// PostgreSQL has no key file beside the database: its servers get this fixed key.
export const PG_SECRETS_KEY = Buffer.from('outbound-e2e-test-secrets-key-01').toString('base64');

// The postgres:// URL the PostgreSQL databases are created through.
function pgServerUrl() {
  const file = process.env.OUTBOUND_TEST_PG_DSN_FILE;
  if (!file) throw new Error('OUTBOUND_E2E_DB=postgres needs OUTBOUND_TEST_PG_DSN_FILE (CTest sets it)');
  const url = readFileSync(file, 'utf8').trim();
  if (!/^postgres(ql)?:\/\//.test(url)) throw new Error(`${file}: not a postgres:// URL`);
  return url;
}

// One SQL statement through psql (postgresql-client).
async function psql(url, sql) {
  await promisify(execFile)('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeout: 30000 });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Polls `fn` until it returns a truthy value; fails after `timeoutMs` (bounded by count too).
export async function eventually(fn, { timeoutMs = 15000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (let i = 0; i < 10000 && Date.now() < deadline; i++) {
    last = await fn();
    if (last) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// The real outbound binary. `args` are extra flags (e.g. `--role worker`, `--lease 2s`); the log
// (stderr) is kept for assertions. `allowPrivateNetworks: false` starts it without
// --allow-private-networks (the SSRF guard on); `retrySchedule` replaces the short default
// schedule. Every start() of one instance uses the same store (on PostgreSQL: the database its
// first start() created; cleanup() drops it).
//
// Several processes on one PostgreSQL database (CONTRACT §12): `shareDb: other` makes this
// instance use the database of the Outbound `other` (which must have started first); its
// cleanup() leaves that database alone (stop every sharer before `other.cleanup()`, which drops
// it). `pgServer` creates the database on that postgres:// server instead of the fixture's (e.g. a
// PgCluster of the test's own).
// One Conformance per distinct document (the same binary serves the same one).
const conformanceCache = new Map();

export class Outbound {
  constructor({ args = [], env = {}, dir, allowPrivateNetworks = true, retrySchedule = '0s,200ms,200ms', shareDb, pgServer } = {}) {
    this.dbKind = dbKind;
    this.dir = dir || mkdtempSync(path.join(tmpdir(), 'outbound-e2e-'));
    this.ownsDir = !dir;
    this.args = args;
    this.env = env;
    this.allowPrivateNetworks = allowPrivateNetworks;
    this.retrySchedule = retrySchedule;
    this.shareDb = shareDb;
    this.pgServer = pgServer;
    if (shareDb && dbKind !== 'postgres') throw new Error('shareDb needs OUTBOUND_E2E_DB=postgres');
    this.log = '';
  }

  // The SQLite file (SQLite only).
  get dbPath() {
    return path.join(this.dir, 'outbound.db');
  }

  // The --db value; on PostgreSQL, set by the first start().
  get dbUrl() {
    if (this.shareDb) return this.shareDb.dbUrl;
    return this.dbKind === 'postgres' ? this.pg?.url : `sqlite:${this.dbPath}`;
  }

  async start() {
    if (this.shareDb && !this.shareDb.dbUrl) throw new Error('shareDb: start the instance whose database is shared first');
    if (this.dbKind === 'postgres' && !this.pg && !this.shareDb) {
      const server = this.pgServer || pgServerUrl();
      const name = `ob_${randomBytes(8).toString('hex')}`;
      await psql(server, `CREATE DATABASE ${name}`);
      const url = new URL(server);
      url.pathname = `/${name}`;
      this.pg = { server, name, url: url.href };
    }
    const from = this.log.length;
    const args = [
      'serve',
      '--listen', '127.0.0.1:0',
      '--db', this.dbUrl,
      ...(this.dbKind === 'postgres' ? ['--secrets-key', PG_SECRETS_KEY] : []),
      '--operator-token', OPERATOR_TOKEN,
      ...(this.allowPrivateNetworks ? ['--allow-private-networks'] : []),
      '--retry-schedule', this.retrySchedule,
      '--retry-jitter', '0',
      ...this.args,
    ];
    this.proc = spawn(BIN, args, {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => resolve({ code, signal }));
      // A binary that cannot be executed (e.g. being rebuilt): no 'exit' follows.
      this.proc.on('error', (e) => {
        this.log += `spawn failed: ${e.message}\n`;
        resolve({ code: null, signal: null, error: e });
      });
    });
    const onData = (chunk) => {
      this.log += chunk.toString();
    };
    this.proc.stdout.on('data', onData);
    this.proc.stderr.on('data', onData);
    const m = await eventually(
      async () => {
        if (this.proc.exitCode !== null || this.proc.signalCode !== null || /^spawn failed: /m.test(this.log.slice(from))) {
          throw new Error(`outbound exited early:\n${this.log}`);
        }
        return /listening on http:\/\/([0-9.]+):(\d+)/.exec(this.log.slice(from));
      },
      { timeoutMs: 20000, what: 'outbound to listen' },
    );
    this.base = `http://${m[1]}:${m[2]}`;
    await eventually(async () => (await fetch(`${this.base}/healthz`).catch(() => null))?.ok, {
      what: 'healthz',
    });
    await this.loadOpenApi();
    return this;
  }

  // Whether the process runs (started and not exited).
  get running() {
    return !!this.proc?.pid && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  // Sends `signal` and waits for the exit ({code, signal}); SIGKILL after `killAfterMs`.
  async stop(signal = 'SIGTERM', { killAfterMs = 15000 } = {}) {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null || this.proc.pid === undefined) return this.exited;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), killAfterMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }

  async cleanup() {
    await this.stop();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
    if (this.pg) {
      // Best effort: the fixture's throwaway cluster goes anyway; an external server keeps
      // what could not be dropped.
      await psql(this.pg.server, `DROP DATABASE IF EXISTS ${this.pg.name} WITH (FORCE)`).catch((e) =>
        console.error(`could not drop database ${this.pg.name}: ${e.message}`));
      this.pg = undefined;
    }
  }

  // The OpenAPI document this process serves; every answer of call() is checked against it
  // (openapi_conformance.mjs). A worker serves no API (and no document): nothing to check.
  async loadOpenApi() {
    const res = await fetch(`${this.base}/openapi.json`);
    const workerOnly = this.args.includes('worker') && this.args[this.args.indexOf('worker') - 1] === '--role';
    if (workerOnly) {
      this.conformance = undefined;
      return;
    }
    assert.equal(res.status, 200, 'GET /openapi.json');
    const text = await res.text();
    if (!conformanceCache.has(text)) conformanceCache.set(text, new Conformance(JSON.parse(text)));
    this.conformance = conformanceCache.get(text);
  }

  // One API call. Returns { status, body (parsed JSON or text), headers }. The answer must
  // conform to the server's OpenAPI document (an exception says how it does not), unless
  // `unchecked` (only for answers that are not the API's, e.g. a worker's).
  async call(method, urlPath, { token, body, headers = {}, raw, unchecked } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload;
    if (raw !== undefined) payload = raw;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] = 'application/json';
    }
    const res = await fetch(`${this.base}${urlPath}`, { method, headers: h, body: payload });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    if (this.conformance && !unchecked) {
      this.conformance.check(method, urlPath, res.status, res.headers.get('content-type'), parsed);
    }
    return { status: res.status, body: parsed, headers: res.headers, text };
  }
}

// A real HTTP receiver on 127.0.0.1. Each path has its own script of answers (default 200) and
// its own list of received requests; `verify(path, secret)` checks every one of them with the
// Standard Webhooks library and returns the parsed payloads. `tls: {key, cert}` makes it an
// https receiver; with `http2: true` as well, one that speaks HTTP/2 only (ALPN h2). Each
// recorded request has its `httpVersion`.
//
// An answer (a script entry, or what a decider returns) is one of:
//   - a status number: that status with a short text body;
//   - 'reset': the connection is reset (RST) once the request has been read;
//   - 'hang': the request is read and never answered;
//   - a promise of one of these: the request is held open until it settles;
//   - { status, headers?, body?, delayMs? }: answered `delayMs` after the request was read;
//     `body` a string, or { bytes, then } to stream `bytes` bytes
//     (Infinity: without end) and then 'end' (default) or 'stall' (keep the connection open and
//     send nothing more). Streams are recorded: `streams(path)` gives { sent, closed } of each.
// Every request is recorded (and verifiable) whatever the answer, with `arrivedAt` (its headers
// arrived) and `at` (its body was read); `peakInFlight(path)` is the most requests on `path`
// that were being answered at once (from arrival until the answer ended or the connection
// closed).
export class Receiver {
  constructor({ tls, http2: h2 = false } = {}) {
    this.tls = tls;
    this.h2 = h2;
    this.requests = new Map();
    this.scripts = new Map();
    this.streamed = new Map();
    this.inFlight = new Map(); // path -> requests being answered now
    this.peak = new Map(); // path -> the most requests ever answered at once
  }

  async start() {
    const handler = (req, res) => {
      const arrivedAt = Date.now();
      const inFlight = (this.inFlight.get(req.url) || 0) + 1;
      this.inFlight.set(req.url, inFlight);
      this.peak.set(req.url, Math.max(this.peak.get(req.url) || 0, inFlight));
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.inFlight.set(req.url, this.inFlight.get(req.url) - 1);
      };
      res.on('finish', finish);
      res.on('close', finish);
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const list = this.requests.get(req.url) || [];
        list.push({ headers: req.headers, body, at: Date.now(), arrivedAt, httpVersion: req.httpVersion });
        this.requests.set(req.url, list);
        const script = this.scripts.get(req.url) || [];
        const decided = this.deciders?.get(req.url)?.(JSON.parse(body || 'null'), req.headers);
        this.answer(req, res, decided ?? (script.length ? script.shift() : 200));
      });
    };
    if (this.h2) {
      this.server = http2.createSecureServer({ ...this.tls, allowHTTP1: false }, handler);
    } else {
      this.server = this.tls ? https.createServer(this.tls, handler) : http.createServer(handler);
    }
    this.server.keepAliveTimeout = 60000;
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  answer(req, res, a) {
    // A promise (or other thenable): the request is held open until it settles with an answer.
    if (typeof a?.then === 'function') {
      a.then((x) => this.answer(req, res, x));
      return undefined;
    }
    if (a === 'reset') return req.socket.resetAndDestroy();
    if (a === 'hang') return undefined;
    if (typeof a === 'number') a = { status: a, body: a >= 200 && a < 300 ? 'ok' : `scripted ${a}` };
    if (a.delayMs > 0) {
      setTimeout(() => this.answer(req, res, { ...a, delayMs: 0 }), a.delayMs);
      return undefined;
    }
    const { status, headers = {}, body = '' } = a;
    if (typeof body === 'string') {
      res.writeHead(status, { 'content-type': 'text/plain', ...headers });
      return res.end(body);
    }
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    const record = { sent: 0, closed: false };
    const list = this.streamed.get(req.url) || [];
    list.push(record);
    this.streamed.set(req.url, list);
    res.on('close', () => {
      record.closed = true;
    });
    const chunk = Buffer.alloc(16 * 1024, 'x');
    const pump = () => {
      while (!res.destroyed && record.sent < body.bytes) {
        const part = Math.min(chunk.length, body.bytes - record.sent);
        record.sent += part;
        if (!res.write(part === chunk.length ? chunk : chunk.subarray(0, part))) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed && body.then !== 'stall') res.end();
    };
    pump();
    return undefined;
  }

  url(p) {
    return `${this.base}${p}`;
  }

  // The most requests on `p` answered at once so far.
  peakInFlight(p) {
    return this.peak.get(p) || 0;
  }

  // { sent, closed } of each streamed answer on `p`.
  streams(p) {
    return this.streamed.get(p) || [];
  }

  // The answers (see above) to the next requests on `p`, in order; 200 after them.
  script(p, answers) {
    this.scripts.set(p, [...answers]);
  }

  // Answers requests on `p` with fn(parsedBody, headers) when it returns an answer (else the
  // script, else 200).
  decide(p, fn) {
    this.deciders ??= new Map();
    this.deciders.set(p, fn);
  }

  received(p) {
    return this.requests.get(p) || [];
  }

  // Verifies every request received on `p` with the public verifier; throws on any failure.
  verify(p, secret) {
    const wh = new Webhook(secret);
    return this.received(p).map((r) => {
      const payload = wh.verify(r.body, {
        'webhook-id': r.headers['webhook-id'],
        'webhook-timestamp': r.headers['webhook-timestamp'],
        'webhook-signature': r.headers['webhook-signature'],
      });
      return { payload, headers: r.headers, body: r.body };
    });
  }

  async stop() {
    this.server.closeAllConnections?.();
    await new Promise((r) => this.server.close(r));
  }
}

// An address on 127.0.0.1 where connecting never completes, for connect timeouts. A listening
// socket with backlog 1 that never accepts (a child process blocked right after listen()) has
// its accept queue filled by a few connections of our own; Linux then drops further SYNs
// (tcp_conn_request: accept queue full), so a connect hangs until the client gives up. Filling
// stops at the first connection that does not complete within 300 ms, which also proves that
// the trick works on this kernel (an error says so otherwise). Loopback has no address that
// drops SYNs by itself, and a firewall rule would need privileges.
export async function startBlackhole() {
  const child = spawn(process.execPath, ['-e', `
    const s = require('node:net').createServer();
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // never returns to the loop
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`blackhole listener exited (${code})`)));
  });
  const fillers = [];
  const stop = async () => {
    for (const c of fillers) c.destroy();
    child.kill('SIGKILL');
  };
  for (let i = 0; i < 16; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    fillers.push(c);
    const connected = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 300);
      c.once('connect', () => { clearTimeout(timer); resolve(true); });
    });
    if (!connected) {
      c.destroy();
      return { port, url: (p) => `http://127.0.0.1:${port}${p}`, stop };
    }
  }
  await stop();
  throw new Error('connections to a full accept queue still complete on this kernel');
}

// A PostgreSQL server of a test's own (scripts/pg-test-cluster.sh in a temporary folder), for
// tests that stop and start the server: never the fixture's, which other tests share. start()
// initdb's and starts it (`dsn`: its postgres:// URL); pause() stops the server (pg_ctl stop -m
// fast) and resume() starts it again on the same port with the same data; destroy() stops it and
// removes everything (call it in an after hook). Always a real cluster, even when
// OUTBOUND_TEST_PG_DSN names an external server.
export class PgCluster {
  static script = path.resolve(here, '../../scripts/pg-test-cluster.sh');
  static bindir = process.env.PG_BINDIR || '/usr/lib/postgresql/15/bin';

  async start() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'outbound-e2e-pg-'));
    const env = { ...process.env };
    delete env.OUTBOUND_TEST_PG_DSN;
    await promisify(execFile)(PgCluster.script, ['start', this.dir], { env, timeout: 120000 });
    this.dsn = readFileSync(path.join(this.dir, 'dsn'), 'utf8').trim();
    // The cluster's home is DIR, or a /tmp folder when DIR is out of the server user's reach.
    this.home = readFileSync(path.join(this.dir, 'home'), 'utf8').trim();
    this.dataDir = path.join(this.home, 'data');
    this.port = new URL(this.dsn).port;
    this.user = (await promisify(execFile)('stat', ['-c', '%U', this.dataDir])).stdout.trim();
    return this;
  }

  // pg_ctl as the cluster's owner (PostgreSQL refuses to run as root: the script gives the
  // cluster to a system user then).
  async pgCtl(args) {
    const pgCtl = path.join(PgCluster.bindir, 'pg_ctl');
    const asOwner = process.getuid?.() === 0 && this.user !== 'root';
    const [cmd, argv] = asOwner ? ['runuser', ['-u', this.user, '--', pgCtl, ...args]] : [pgCtl, args];
    await promisify(execFile)(cmd, argv, { cwd: '/', timeout: 90000 });
  }

  async pause() {
    await this.pgCtl(['stop', '-D', this.dataDir, '-m', 'fast', '-w', '-t', '60']);
  }

  async resume() {
    await this.pgCtl(['start', '-D', this.dataDir, '-l', path.join(this.home, 'server.log'), '-o', `-p ${this.port}`, '-w', '-t', '60']);
  }

  async destroy() {
    if (!this.dir) return;
    const env = { ...process.env };
    delete env.OUTBOUND_TEST_PG_DSN;
    await promisify(execFile)(PgCluster.script, ['stop', this.dir], { env, timeout: 120000 }).catch((e) =>
      console.error(`could not stop the test's PostgreSQL cluster in ${this.dir}: ${e.message}`));
    this.dir = undefined;
  }
}

// The largest number of `times` (ms) in any window [t, t + windowMs).
export function maxInWindow(times, windowMs = 1000) {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[j] <= t[i] - windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

// What `rx` received for subscription `s` ({path, secret}), checked: every signature verified with
// the Standard Webhooks verifier (throws on a bad one), each payload's eventId equal to its
// webhook-id, and a deliveryId of its own per attempt (even across restarts and processes).
// Returns how many webhooks came and the duplicates (those beyond the first per eventId).
export function receivedAt(rx, s) {
  const got = rx.verify(s.path, s.secret);
  const per = new Map();
  for (const w of got) {
    assert.equal(w.payload.eventId, w.headers['webhook-id']);
    per.set(w.payload.eventId, (per.get(w.payload.eventId) || 0) + 1);
  }
  let duplicates = 0;
  for (const c of per.values()) duplicates += c - 1;
  assert.equal(new Set(got.map((w) => w.payload.deliveryId)).size, got.length, `${s.path}: a deliveryId used twice`);
  return { received: got.length, duplicates };
}

// Every attempt of a subscription from its delivery log (all pages), oldest first, each with
// `at` (attemptedAtUtc in ms).
export async function attemptsOf(ob, token, subscriptionId) {
  const rows = [];
  let cursor = '';
  for (let page = 0; page < 100; page++) {
    const q = `limit=250${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await ob.call('GET', `/v1/subscriptions/${subscriptionId}/deliveries?${q}`, { token });
    assert.equal(r.status, 200, r.text);
    rows.push(...r.body.data);
    if (!r.body.nextCursor) break;
    cursor = r.body.nextCursor;
  }
  return rows.map((a) => ({ ...a, at: Date.parse(a.attemptedAtUtc) })).sort((x, y) => x.at - y.at);
}

// Creates a tenant through the operator API; returns its id and key.
export async function createTenant(ob, name = 'Tenant') {
  const r = await ob.call('POST', '/v1/tenants', { token: OPERATOR_TOKEN, body: { name } });
  if (r.status !== 201) throw new Error(`create tenant: ${r.status} ${r.text}`);
  return { tenantId: r.body.tenantId, key: r.body.apiKey };
}

export async function createClient(ob, tenantKey, body) {
  const c = await ob.call('POST', '/v1/clients', { token: tenantKey, body });
  if (c.status !== 201) throw new Error(`create client: ${c.status} ${c.text}`);
  const k = await ob.call('POST', `/v1/clients/${c.body.clientId}/keys`, { token: tenantKey });
  if (k.status !== 201) throw new Error(`create client key: ${k.status} ${k.text}`);
  return { clientId: c.body.clientId, key: k.body.apiKey };
}

// Customer 1 (number C-1, name C, external id C1 in logistics_erp; `customer` overrides
// fields), PUT with the tenant key, and one target of it per title (T-1, T-2, ...), imported
// with `clientKey` (a logistics_erp client's); returns the target ids. Either refused throws.
export async function importTargets(ob, tenantKey, clientKey, { titles = ['T'], customer = {} } = {}) {
  const c = await ob.call('PUT', '/v1/customers/1', { token: tenantKey, body: { customerNumber: 'C-1', name: 'C', externalIds: { logistics_erp: 'C1' }, ...customer } });
  if (c.status >= 300) throw new Error(`customer: ${c.status} ${c.text}`);
  const targets = titles.map((title, i) => ({ externalId: `T-${i + 1}`, customerExternalId: 'C1', title }));
  const r = await ob.call('POST', '/v1/imports/targets', { token: clientKey, body: { targets } });
  if (r.status !== 200) throw new Error(`import: ${r.status} ${r.text}`);
  return r.body.results.map((x) => x.targetId);
}

// A tenant with one client (logistics_erp; `client` adds to its body), one customer and `n`
// imported targets T-1..T-n (titles T1..Tn).
export async function seedTargets(ob, n = 2, client = {}) {
  const tenant = await createTenant(ob);
  const erp = await createClient(ob, tenant.key, { name: 'ERP', sourceSystem: 'logistics_erp', ...client });
  const titles = Array.from({ length: n }, (_, i) => `T${i + 1}`);
  return { tenant, erp, targetIds: await importTargets(ob, tenant.key, erp.key, { titles }) };
}

// A tenant with one client (logistics_erp), one customer and one imported target: the set-up
// most tests start from.
export async function seedOneTarget(ob) {
  const tenant = await createTenant(ob);
  const erp = await createClient(ob, tenant.key, { name: 'ERP', sourceSystem: 'logistics_erp' });
  const [targetId] = await importTargets(ob, tenant.key, erp.key);
  return { tenant, erp, targetId };
}

// An API error answer: `status`, and the JSON error shape of CONTRACT.md §8 ({error: {code,
// message}}), with `code` when given.
export function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.body, 'object', r.text);
  assert.equal(typeof r.body.error?.code, 'string', r.text);
  assert.equal(typeof r.body.error?.message, 'string', r.text);
  if (code) assert.equal(r.body.error.code, code, r.text);
}

// A subscription of `client` (its key) to `url`, appointment events unless `extra` says otherwise;
// returns its id and its signing secret (shown once, at creation).
// outbound_deliveries_total{result} as `ob`'s /metrics says it now (0 before the first).
export async function deliveriesTotal(ob, result) {
  const r = await ob.call('GET', '/metrics', { token: OPERATOR_TOKEN });
  assert.equal(r.status, 200, r.text);
  const m = r.text.match(new RegExp(`^outbound_deliveries_total\\{result="${result}"\\} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

export async function subscribe(ob, client, url, extra = {}) {
  const r = await ob.call('POST', '/v1/subscriptions', { token: client.key, body: { url, eventTypes: ['appointment.*'], ...extra } });
  assert.equal(r.status, 201, r.text);
  return { id: r.body.subscriptionId, secret: r.body.secret };
}

// Starts `rx` and `ob` (then runs `setUp`, if given) before the tests of the enclosing file or
// describe(), and stops them after. One hook, so the order is certain.
export function serveDuring(ob, rx, setUp = async () => {}) {
  before(async () => {
    await rx.start();
    await ob.start();
    await setUp();
  });
  after(async () => {
    await ob.cleanup();
    await rx.stop();
  });
}

// Publishes `appointment.started` (appointment `n`) about `targetId` with the tenant key; returns
// the eventId.
export async function publishStarted(ob, tenantKey, targetId, n) {
  const r = await ob.call('POST', '/v1/events', {
    token: tenantKey,
    body: { eventType: 'appointment.started', targetId, occurredAtUtc: '2026-06-25T14:02:00Z', data: { appointmentId: n, startedAtUtc: '2026-06-25T14:02:00Z' } },
  });
  assert.equal(r.status, 202, r.text);
  return r.body.eventId;
}

// Duplicates only for attempts in flight at a kill (CONTRACT §6, §12), as crash.test.mjs and
// scaleout.test.mjs check them: every repeat of a webhook to one of `subs` (each {path}) must
// follow a kill (each {at, exitedAt?}: when SIGKILL was sent, and when the exit was seen) that
// came at most `inFlightMs` after the copy before it, that copy recorded no later than `lagMs`
// after the exit (the receiver runs in the test's process: a request written just before the
// death may be recorded a moment later, one turn of a busy event loop). And per kill at most
// what was sending (`cap`: Σ maxConcurrency) plus what had been answered in the `inFlightMs`
// before it (answered, outcome not yet committed): `bound`.
export function repeatsExplainedByKills(rx, subs, kills, { inFlightMs, lagMs, cap, started = 0 }) {
  const unexplained = [];
  let worstLag = 0;
  for (const s of subs) {
    const copies = new Map();
    for (const r of rx.received(s.path)) {
      const id = r.headers['webhook-id'];
      if (!copies.has(id)) copies.set(id, []);
      copies.get(id).push(r.arrivedAt);
    }
    for (const [id, times] of copies) {
      for (let i = 1; i < times.length; i++) {
        const kill = kills.find(
          (k) => times[i - 1] <= (k.exitedAt ?? k.at) + lagMs && k.at - times[i - 1] <= inFlightMs && times[i] >= k.at,
        );
        if (!kill) {
          unexplained.push(
            `${s.path} ${id}: copies at ${times.map((x) => x - started).join(', ')} ms; kills at ${kills.map((k) => k.at - started).join(', ')} ms`,
          );
        } else worstLag = Math.max(worstLag, kill.at - times[i - 1]);
      }
    }
  }
  const all = subs.flatMap((s) => rx.received(s.path).map((r) => r.arrivedAt));
  const perKill = kills.map((k) => cap + all.filter((a) => a <= k.at && k.at - a <= inFlightMs).length);
  return { unexplained, worstLag, perKill, bound: perKill.reduce((a, b) => a + b, 0) };
}
