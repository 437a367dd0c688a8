// The process as an operator runs it: healthz and readyz, a second process on the same SQLite
// file is refused (on PostgreSQL: welcome), PostgreSQL without a secrets key and SQLite with a
// role other than `all` are refused with a clear message, `outbound migrate` (on the store the
// file runs on), SIGTERM exits cleanly, and bad settings are named. Runs on SQLite (e2e.process)
// and PostgreSQL (e2e_pg.process); `dbKind` picks the store's own expectations.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, Outbound, dbKind } from './harness.mjs';

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

test('a second process on the same SQLite file is refused', { skip: dbKind !== 'sqlite' && 'SQLite only' }, () => {
  const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${ob.dbPath}`], { timeout: 10000, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /in use by another outbound process/);
});

test('a second process on the same PostgreSQL database starts, answers, and stops cleanly', { skip: dbKind !== 'postgres' && 'PostgreSQL only' }, async () => {
  const second = new Outbound({ shareDb: ob });
  try {
    await second.start();
    assert.equal((await second.call('GET', '/readyz')).status, 200);
    const { code } = await second.stop('SIGTERM');
    assert.equal(code, 0);
  } finally {
    await second.cleanup();
  }
  assert.equal((await ob.call('GET', '/readyz')).status, 200);
});

test('readyz answers without a token while the store answers', async () => {
  const r = await ob.call('GET', '/readyz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ready' });
});

test('postgres:// without --secrets-key is refused with a clear message', () => {
  const env = { ...process.env };
  delete env.OUTBOUND_SECRETS_KEY;
  const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', 'postgres://localhost/outbound'], { timeout: 10000, encoding: 'utf8', env });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--secrets-key is required with PostgreSQL/);
});

test('a role other than all is refused with SQLite', () => {
  for (const role of ['api', 'worker']) {
    const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${ob.dbPath}`, '--role', role], { timeout: 10000, encoding: 'utf8' });
    assert.equal(r.status, 2, role);
    assert.match(r.stderr, new RegExp(`--role ${role} needs PostgreSQL`));
  }
});

test('outbound migrate creates a SQLite database and exits 0; the database of a running process', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outbound-migrate-'));
  try {
    const db = path.join(dir, 'outbound.db');
    const r = spawnSync(BIN, ['migrate', '--db', `sqlite:${db}`], { timeout: 10000, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(db));
    const again = spawnSync(BIN, ['migrate', '--db', `sqlite:${db}`], { timeout: 10000, encoding: 'utf8' });
    assert.equal(again.status, 0, again.stderr);
    if (dbKind === 'sqlite') {
      // The file of a running process is refused, as for serve.
      const busy = spawnSync(BIN, ['migrate', '--db', `sqlite:${ob.dbPath}`], { timeout: 10000, encoding: 'utf8' });
      assert.equal(busy.status, 1);
      assert.match(busy.stderr, /in use by another outbound process/);
    } else {
      // A PostgreSQL database in use is migrated under a lock (a deploy step beside running
      // processes): nothing to do, exit 0.
      const live = spawnSync(BIN, ['migrate', '--db', ob.dbUrl], { timeout: 30000, encoding: 'utf8' });
      assert.equal(live.status, 0, live.stderr);
      assert.match(live.stderr, /migrated/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
