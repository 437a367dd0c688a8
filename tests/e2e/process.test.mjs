// The process as an operator runs it: healthz, a second process on the same SQLite file is
// refused, PostgreSQL URLs are refused with a clear message until that store exists, SIGTERM
// exits cleanly, and bad settings are named.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { BIN, Outbound } from './harness.mjs';

const ob = new Outbound();
before(async () => {
  await ob.start();
});
after(async () => {
  await ob.cleanup();
});

test('healthz answers without a token', async () => {
  const r = await ob.call('GET', '/healthz');
  assert.equal(r.status, 200);
});

test('a second process on the same SQLite file is refused', () => {
  const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${ob.dbPath}`], { timeout: 10000, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /in use by another outbound process/);
});

test('postgres:// is refused with a clear message', () => {
  const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', 'postgres://localhost/outbound'], { timeout: 10000, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /PostgreSQL/);
});

test('a bad setting is named', () => {
  const r = spawnSync(BIN, ['serve', '--retry-schedule', '0s,soon'], { timeout: 10000, encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /retry-schedule/);
  const e = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', 'sqlite:/nonexistent-dir/x.db'], { timeout: 10000, encoding: 'utf8', env: { ...process.env, OUTBOUND_RETRY_JITTER: '7' } });
  assert.equal(e.status, 2);
  assert.match(e.stderr, /retry-jitter/);
});

test('unknown routes and methods answer JSON errors', async () => {
  const r = await ob.call('GET', '/v1/nothing-here');
  assert.equal(r.status, 404);
  assert.equal(typeof r.body.error.code, 'string');
});

test('SIGTERM stops the service cleanly', async () => {
  const { code, signal } = await ob.stop('SIGTERM');
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.match(ob.log, /stopped/);
});
