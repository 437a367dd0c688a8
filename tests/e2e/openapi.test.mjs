// GET /openapi.json (CONTRACT.md §13): the OpenAPI 3.1 document lints clean with Redocly, names
// exactly the routes the server registers, carries the webhooks of the catalog with the same
// data schemas as GET /v1/event-types, and the ajv check that every e2e answer goes through
// (openapi_conformance.mjs) does catch an answer that drifts from it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Outbound, Receiver, createClient, createTenant, serveDuring } from './harness.mjs';
import { Conformance } from './openapi_conformance.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const ob = new Outbound();
const rx = new Receiver();
serveDuring(ob, rx);

async function documentText() {
  const r = await fetch(`${ob.base}/openapi.json`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  return r.text();
}

test('the document is OpenAPI 3.1 and `redocly lint` finds no error and no warning', async () => {
  const text = await documentText();
  const doc = JSON.parse(text);
  assert.equal(doc.openapi, '3.1.0');
  const dir = mkdtempSync(path.join(tmpdir(), 'outbound-openapi-'));
  const file = path.join(dir, 'openapi.json');
  writeFileSync(file, text);
  let out;
  try {
    out = execFileSync(path.join(here, 'node_modules/.bin/redocly'), ['lint', file, '--config', path.join(repo, 'redocly.yaml'), '--format', 'stylish'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });
  } catch (e) {
    assert.fail(`redocly lint failed:\n${e.stdout}\n${e.stderr}`);
  }
  assert.doesNotMatch(out, /warning|error/i, out);
});

test('the document has exactly the routes the server registers', async () => {
  const doc = JSON.parse(await documentText());
  const documented = new Set();
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const m of Object.keys(item)) if (['get', 'post', 'put', 'patch', 'delete'].includes(m)) documented.add(`${m.toUpperCase()} ${p}`);
  }
  const registered = new Set();
  const apiDir = path.join(repo, 'src/api');
  for (const f of readdirSync(apiDir).filter((n) => /^handlers_.*\.cpp$/.test(n))) {
    for (const m of readFileSync(path.join(apiDir, f), 'utf8').matchAll(/router\.Add(?:Async)?\(\s*"([A-Z]+)",\s*"([^"]+)"/g)) registered.add(`${m[1]} ${m[2]}`);
  }
  assert.ok(registered.size >= 40, `only ${registered.size} routes found`);
  assert.deepEqual([...registered].filter((r) => !documented.has(r)).sort(), [], 'routes missing from the OpenAPI document');
  assert.deepEqual([...documented].filter((r) => !registered.has(r)).sort(), [], 'documented routes the server does not register');
  // Every operation documents its success answer and its errors.
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      assert.ok(op.summary && op.operationId, `${m} ${p}: summary and operationId`);
      assert.ok(Object.keys(op.responses).some((s) => /^2/.test(s)), `${m} ${p}: a 2xx answer`);
      if (op.security?.length !== 0) assert.ok(op.responses.default || op.responses['401'], `${m} ${p}: its errors`);
    }
  }
});

test('webhooks: the 13 catalog types with the data schemas of GET /v1/event-types, and the operational and test types', async () => {
  const doc = JSON.parse(await documentText());
  const tenant = await createTenant(ob);
  const types = await ob.call('GET', '/v1/event-types', { token: tenant.key });
  assert.equal(types.status, 200);
  assert.equal(types.body.data.length, 13);
  for (const t of types.body.data) {
    const hook = doc.webhooks[t.eventType]?.post;
    assert.ok(hook, `webhook ${t.eventType}`);
    const schema = hook.requestBody.content['application/json'].schema;
    assert.deepEqual(schema.allOf[1].properties.data, t.schema, `${t.eventType}: the catalog's schema`);
    assert.equal(schema.allOf[1].properties.eventType.const, t.eventType);
    assert.deepEqual(hook.parameters.map((p) => p.name).slice(0, 3), ['webhook-id', 'webhook-timestamp', 'webhook-signature']);
  }
  for (const t of ['subscription.disabled', 'delivery.dead', 'ordinavo.test']) assert.ok(doc.webhooks[t], t);
  // Each catalog type's example (the catalog's example event, as test webhooks send it) matches
  // its own schema: the examples cannot drift from the catalog either.
  const c = new Conformance(doc);
  for (const t of types.body.data) {
    const example = doc.webhooks[t.eventType].post.requestBody.content['application/json'].example;
    assert.equal(example?.eventType, t.eventType);
    c.checkSchema(`/webhooks/${t.eventType.replace(/\//g, '~1')}/post/requestBody/content/application~1json/schema`, example);
  }
  assert.equal(Object.keys(doc.webhooks).length, 16);
});

test('the answer check of every e2e call catches drift: a missing field, an extra field, a wrong type, an undocumented status', async () => {
  assert.ok(ob.conformance, 'the harness checks every answer of ob.call against the document');
  const doc = JSON.parse(await documentText());
  const c = new Conformance(doc);
  const tenant = await createTenant(ob);
  const erp = await createClient(ob, tenant.key, { name: 'ERP', sourceSystem: 'logistics_erp' });
  const r = await ob.call('POST', '/v1/subscriptions', { token: erp.key, body: { url: rx.url('/x'), eventTypes: ['*'] } });
  assert.equal(r.status, 201, r.text);
  const type = 'application/json';
  c.check('POST', '/v1/subscriptions', 201, type, r.body); // the real answer passes
  const { url, ...missing } = r.body;
  assert.throws(() => c.check('POST', '/v1/subscriptions', 201, type, missing), /must have required property 'url'/);
  assert.throws(() => c.check('POST', '/v1/subscriptions', 201, type, { ...r.body, surprise: 1 }), /additional properties: surprise/);
  assert.throws(() => c.check('POST', '/v1/subscriptions', 201, type, { ...r.body, enabled: 'yes' }), /\/enabled must be boolean/);
  assert.throws(() => c.check('POST', '/v1/subscriptions', 200, type, r.body), /status 200 is not documented/);
  assert.throws(() => c.check('GET', `/v1/subscriptions/${r.body.subscriptionId}`, 200, 'text/plain', r.body), /content-type text\/plain/);
  // An error answer must be the error shape.
  assert.throws(() => c.check('GET', '/v1/subscriptions/999', 404, type, { message: 'no' }), /must have required property 'error'/);
  const e = await ob.call('GET', '/v1/subscriptions/999', { token: erp.key });
  c.check('GET', '/v1/subscriptions/999', e.status, type, e.body);
});

// CONTRACT §8: "The codes are a documented, stable list". Every error code the API's code can
// answer is in docs/API.md's table; the codes below never reach an API answer (start-up settings,
// the store's internals that are retried or mapped to others, replays answered as the first
// answer). A new code fails this until it is documented or named here with its reason.
test('every error code in the sources is in docs/API.md, or is one an answer never carries', () => {
  const internal = new Set([
    'exception', 'help', 'idempotency_replay', 'invalid_dispatcher_options', 'invalid_retry_schedule',
    'invalid_secret', 'invalid_secrets_key', 'invalid_setting', 'listen_failed', 'schema_too_new', 'secrets_key_mismatch',
    'store_conflict', 'store_deadlock', 'store_locked', 'subscription', 'target',
  ]);
  const patterns = [
    /Error::Invalid\(\s*[^,]+,\s*"([a-z_]+)"/g,
    /Error::Conflict\(\s*"([a-z_]+)"/g,
    /push_back\(\{[^,]+,\s*"([a-z_]+)"/g,
    /\.Fail\(\s*[^,]+,\s*"([a-z_]+)"/g,
    /\.code = "([a-z_]+)"/g,
    /Error\{\s*(?:core::)?ErrorKind::\w+,\s*"([a-z_]+)"/g,
    /MakeError\(\s*(?:core::)?ErrorKind::\w+,\s*"([a-z_]+)"/g,
    /ErrorResponse\(\s*\d+,\s*"([a-z_]+)"/g,
  ];
  const codes = new Map();
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'testing' && e.name !== 'fuzz') walk(p);
      } else if (/\.(cpp|h)$/.test(e.name) && !/_test\.cpp$/.test(e.name)) {
        const text = readFileSync(p, 'utf8');
        for (const re of patterns) for (const m of text.matchAll(re)) codes.set(m[1], path.relative(repo, p));
      }
    }
  };
  walk(path.join(repo, 'src'));
  assert.ok(codes.size > 40, `only ${codes.size} codes found: the patterns no longer match the sources`);
  const api = readFileSync(path.join(repo, 'docs/API.md'), 'utf8');
  const undocumented = [...codes].filter(([c]) => !internal.has(c) && !api.includes('`' + c + '`'));
  assert.deepEqual(undocumented, [], 'error codes missing from docs/API.md');
});
