// Tenant and client isolation over every route the server registers (CONTRACT.md §2 and §8,
// docs/API.md "Authentication and scope"), table-driven: each route of ROUTES is called by every
// kind of caller of CALLERS against tenant A's objects.
//   - no token or a bogus one: 401 `unauthorized` (except the public /healthz and /readyz);
//   - a kind of token the route does not allow: 403 `insufficient_scope`;
//   - an id outside the caller's scope (tenant B's callers, A's other client on A's owner
//     client's subscription or event): 404, exactly the answer an id that does not exist gets;
//   - no refused answer carries any of tenant A's data (names, external ids, secrets, keys);
//   - no refused write changes anything (A's objects re-read by their owner, before and after);
//   - and, last, the owners themselves get a 2xx on every route, so the refusals above are
//     refusals of a well-formed call and not of a broken one.
// The route table of the server (router.Add in src/api/handlers_*.cpp) is read at run time and
// must match ROUTES exactly: a new route fails the first test until it is added here.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OPERATOR_TOKEN, Outbound, Receiver, createClient, createTenant, eventually, assertError } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const apiDir = path.resolve(here, '../../src/api');

const ob = new Outbound();
const rx = new Receiver();
const tag = randomBytes(6).toString('hex'); // makes every marker string unique to this run
let a, b, aOwner, aOther, bClient;
let x; // tenant A's ids (see fixtures below)
let markers; // strings of tenant A's data that no refused answer may contain
let snapshotBefore;

// Ids that exist nowhere: an id outside the caller's scope must be answered exactly like these.
const MISSING = {
  tenantId: 999999,
  clientId: 999999,
  tenantKeyId: 999999,
  clientKeyId: 999999,
  customerId: 999999,
  locationId: 999999,
  contactId: 999999,
  targetId: 999999,
  targetExternalId: 'no-such-target',
  subId: 999999,
  eventId: 'evt_01HZZZZZZZZZZZZZZZZZZZZZZZ',
};

// Kinds of caller; a route allows a set of them (PUBLIC: no token needed).
const OP = 'operator';
const TENANT = 'tenant';
const CLIENT = 'client';
const NONE = 'none';
const PUBLIC = [];

// `rel`: how the caller relates to tenant A's data. Owners (tenant A, A's owner client, and the
// operator on operator routes) are checked in the last phase; the others in the first.
const CALLERS = [
  { name: 'operator token', kind: OP, token: () => OPERATOR_TOKEN },
  { name: 'tenant A key', kind: TENANT, rel: 'owner', token: () => a.key },
  { name: 'client A key (owner)', kind: CLIENT, rel: 'owner', token: () => aOwner.key },
  { name: 'client A key (other client)', kind: CLIENT, rel: 'other', token: () => aOther.key },
  { name: 'tenant B key', kind: TENANT, rel: 'b', token: () => b.key },
  { name: 'client B key', kind: CLIENT, rel: 'bClient', token: () => bClient.key },
  { name: 'no token', kind: NONE, token: () => undefined },
  { name: 'bogus token', kind: NONE, token: () => `obt_${'x'.repeat(43)}` },
];

let serial = 0;
const unique = () => `${tag}-${++serial}`;

function ok(r, what) {
  assert.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${r.text}`);
  return r.body;
}

// Helpers that make a throwaway object of tenant A for the owners' destructive calls.
async function freshKey(ids) {
  const k = ok(await ob.call('POST', '/v1/keys', { token: a.key }), 'fresh key');
  return { ...ids, tenantKeyId: k.keyId, clientKeyId: k.keyId };
}
async function freshSubscription(ids) {
  const body = { clientId: ids.clientId, url: rx.url('/throwaway'), eventTypes: ['billing.event_created'] };
  const s = ok(await ob.call('POST', '/v1/subscriptions', { token: a.key, body }), 'fresh subscription');
  return { ...ids, subId: s.subscriptionId };
}

const appointmentStarted = (targetId) => ({
  eventType: 'appointment.started',
  targetId,
  occurredAtUtc: '2026-06-25T14:02:00Z',
  data: { appointmentId: 7, startedAtUtc: '2026-06-25T14:02:00Z' },
});

// Rows of ROUTES for GET, DELETE and PUT of one kind of directory record, the one of ids[idKey];
// `put` adds to the PUT row. The owners delete a throwaway record made with putBody.
function directoryRows(kind, idKey, putBody, put) {
  const pattern = `/v1/${kind}/{id}`;
  const path = (i) => `/v1/${kind}/${i[idKey]}`;
  const throwaway = async (ids) => {
    const id = 1000 + ++serial;
    ok(await ob.call('PUT', `/v1/${kind}/${id}`, { token: a.key, body: putBody(ids) }), `a throwaway record of ${kind}`);
    return { ...ids, [idKey]: id };
  };
  return [
    { method: 'GET', pattern, allow: [TENANT], path },
    { method: 'DELETE', pattern, allow: [TENANT], path, fresh: throwaway },
    { method: 'PUT', pattern, allow: [TENANT], path, body: putBody, ...put },
  ];
}

// THE TABLE. Every (method, pattern) that the server registers must be here (the first test
// compares with src/api/handlers_*.cpp); when you add a route to the server, add a row.
//   path(ids) / body(ids): the call, built from tenant A's ids (or MISSING's);
//   allow: the kinds of token the route takes;
//   other / b / bClient: what A's other client / tenant B / B's client get when their kind is
//     allowed (default 'hidden' on routes with an id in the path):
//       'hidden' — 404 (hiddenStatus: 422 where the id is a reference in the body), the same
//                  answer as for MISSING's ids, none of A's data;
//       'empty'  — 200 and an empty list;
//       'own'    — 2xx on the caller's own data, none of A's data;
//       'shared' — 2xx: the tenant's data that every client of it may read (targets, catalog);
//       a number — that status with the error shape, none of A's data;
//   fresh(ids): for destructive rows, a throwaway object for each owner's call;
//   ownerCheck(r): more checks of an owner's answer.
// Rows run in this order; tenant B's successful writes ('own') come after B's reads of the same
// ids, so that B never finds its own copy where A's id was.
// The owners' redelivers one after the other: each waits until the one before has been sent
// (a delivery whose attempt is under way is not reopened: 409 delivery_in_flight).
async function settled(ids) {
  await eventually(
    async () => {
      const d = (await ob.call('GET', `/v1/events/${ids.eventId}`, { token: a.key })).body.deliveries;
      return d?.length > 0 && d.every((row) => row.status === 'succeeded');
    },
    { what: 'the event delivered before its redeliver' },
  );
  return ids;
}

const ROUTES = [
  { method: 'GET', pattern: '/healthz', allow: PUBLIC },
  { method: 'GET', pattern: '/readyz', allow: PUBLIC },
  { method: 'GET', pattern: '/openapi.json', allow: PUBLIC },
  { method: 'GET', pattern: '/metrics', allow: [OP], ownerCheck: (r) => assertNoOwnerData(r, '') },
  { method: 'POST', pattern: '/v1/tenants', allow: [OP], body: () => ({ name: 'Another tenant' }) },
  { method: 'POST', pattern: '/v1/tenants/{id}/keys', allow: [OP], path: (i) => `/v1/tenants/${i.tenantId}/keys` },

  { method: 'GET', pattern: '/v1/clients', allow: [TENANT], b: 'own' },
  { method: 'GET', pattern: '/v1/clients/{id}', allow: [TENANT], path: (i) => `/v1/clients/${i.clientId}` },
  { method: 'PATCH', pattern: '/v1/clients/{id}', allow: [TENANT], path: (i) => `/v1/clients/${i.clientId}`, body: () => ({ name: 'renamed by the caller', billingDetailsAllowed: true }) },
  { method: 'POST', pattern: '/v1/clients/{id}/keys', allow: [TENANT], path: (i) => `/v1/clients/${i.clientId}/keys` },
  {
    method: 'DELETE',
    pattern: '/v1/clients/{id}',
    allow: [TENANT],
    path: (i) => `/v1/clients/${i.clientId}`,
    fresh: async (ids) => ({ ...ids, clientId: (await createClient(ob, a.key, { name: 'throwaway', sourceSystem: `tmp_${unique()}` })).clientId }),
  },
  { method: 'POST', pattern: '/v1/clients', allow: [TENANT], body: () => ({ name: 'New client', sourceSystem: `new_${unique()}` }), b: 'own' },

  { method: 'GET', pattern: '/v1/keys', allow: [TENANT], b: 'own' },
  { method: 'DELETE', pattern: '/v1/keys/{id}', allow: [TENANT], note: "A's tenant key", path: (i) => `/v1/keys/${i.tenantKeyId}`, fresh: freshKey },
  { method: 'DELETE', pattern: '/v1/keys/{id}', allow: [TENANT], note: "A's owner client's key", path: (i) => `/v1/keys/${i.clientKeyId}`, fresh: freshKey },
  { method: 'POST', pattern: '/v1/keys', allow: [TENANT], b: 'own' },

  // Locations and contacts first: once tenant B has upserted its own customer under A's id, a
  // reference to that id would no longer be unknown to B.
  ...directoryRows('locations', 'locationId', (i) => ({ customerId: i.customerId, name: 'overwritten', address: 'overwritten', externalIds: {} }), { hiddenStatus: 422 }),
  ...directoryRows('contacts', 'contactId', (i) => ({ customerId: i.customerId, displayName: 'overwritten', externalIds: {} }), { hiddenStatus: 422 }),
  // Ids are per tenant: B's PUT upserts a customer of B's own under the same id.
  ...directoryRows('customers', 'customerId', () => ({ customerNumber: `overwritten-${unique()}`, name: 'overwritten', externalIds: {} }), { b: 'own' }),

  // Directory lists (CONTRACT §13), after B's PUT of its own customer under A's id: B lists its
  // own records, and A's external id finds nothing for B.
  { method: 'GET', pattern: '/v1/customers', allow: [TENANT], b: 'own' },
  { method: 'GET', pattern: '/v1/customers', note: "A's external id", allow: [TENANT], path: () => `/v1/customers?sourceSystem=a_erp&externalId=A-C-${tag}`, b: 'empty' },
  { method: 'GET', pattern: '/v1/locations', allow: [TENANT], b: 'empty' },
  { method: 'GET', pattern: '/v1/locations', note: "A's external id", allow: [TENANT], path: () => `/v1/locations?sourceSystem=a_erp&externalId=A-L-${tag}`, b: 'empty' },
  { method: 'GET', pattern: '/v1/contacts', allow: [TENANT], b: 'empty' },
  { method: 'GET', pattern: '/v1/contacts', note: "A's external id", allow: [TENANT], path: () => `/v1/contacts?sourceSystem=a_erp&externalId=A-P-${tag}`, b: 'empty' },

  // Targets are the tenant's: every client of it may read them (CONTRACT §8 "client: read").
  { method: 'GET', pattern: '/v1/targets', allow: [TENANT, CLIENT], other: 'shared', b: 'own' },
  { method: 'GET', pattern: '/v1/targets', note: "A's external id", allow: [TENANT, CLIENT], path: (i) => `/v1/targets?externalId=${i.targetExternalId}&sourceSystem=a_erp`, other: 'shared', b: 'empty' },
  { method: 'GET', pattern: '/v1/targets/{id}', allow: [TENANT, CLIENT], path: (i) => `/v1/targets/${i.targetId}`, other: 'shared' },
  { method: 'PATCH', pattern: '/v1/targets/{id}', allow: [TENANT], path: (i) => `/v1/targets/${i.targetId}`, body: () => ({ externalIds: { planner: 'P-overwritten' } }) },

  { method: 'POST', pattern: '/v1/events', allow: [TENANT], body: (i) => appointmentStarted(i.targetId), b: 'hidden' },
  // B's batch about A's target: 202 with the item refused as for a target that does not exist.
  { method: 'POST', pattern: '/v1/events/batch', allow: [TENANT], body: (i) => ({ events: [appointmentStarted(i.targetId)] }), b: 'own' },
  { method: 'GET', pattern: '/v1/events', allow: [TENANT, CLIENT], other: 'own', b: 'own' },
  { method: 'GET', pattern: '/v1/events', note: "A's target", allow: [TENANT, CLIENT], path: (i) => `/v1/events?targetId=${i.targetId}`, other: 'empty', b: 'empty' },
  { method: 'GET', pattern: '/v1/events/{eventId}', allow: [TENANT, CLIENT], path: (i) => `/v1/events/${i.eventId}` },
  { method: 'POST', pattern: '/v1/events/{eventId}/redeliver', allow: [TENANT, CLIENT], note: 'all', path: (i) => `/v1/events/${i.eventId}/redeliver`, body: () => ({}), fresh: settled },
  { method: 'POST', pattern: '/v1/events/{eventId}/redeliver', allow: [TENANT, CLIENT], note: "to A's owner's subscription", path: (i) => `/v1/events/${i.eventId}/redeliver`, body: (i) => ({ subscriptionId: i.subId }), fresh: settled },
  { method: 'GET', pattern: '/v1/event-types', allow: [TENANT, CLIENT], other: 'shared', b: 'shared' },

  // clientId names A's owner client: unknown to everybody else (422 as for a missing one).
  { method: 'POST', pattern: '/v1/subscriptions', allow: [TENANT, CLIENT], body: (i) => ({ clientId: i.clientId, url: rx.url('/new'), eventTypes: ['billing.event_created'] }), b: 'hidden', other: 'hidden', hiddenStatus: 422 },
  { method: 'GET', pattern: '/v1/subscriptions', allow: [TENANT, CLIENT], other: 'own', b: 'own' },
  { method: 'GET', pattern: '/v1/subscriptions', note: "A's owner client", allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions?clientId=${i.clientId}`, other: 'empty', b: 'empty' },
  { method: 'GET', pattern: '/v1/subscriptions/{id}', allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions/${i.subId}` },
  {
    method: 'PATCH',
    pattern: '/v1/subscriptions/{id}',
    allow: [TENANT, CLIENT],
    path: (i) => `/v1/subscriptions/${i.subId}`,
    body: () => ({ url: rx.url('/hijacked'), description: 'hijacked', eventTypes: ['*'], headers: {} }),
  },
  { method: 'DELETE', pattern: '/v1/subscriptions/{id}', allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions/${i.subId}`, fresh: freshSubscription },
  { method: 'GET', pattern: '/v1/subscriptions/{id}/deliveries', allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions/${i.subId}/deliveries` },
  { method: 'POST', pattern: '/v1/subscriptions/{id}/rotate-secret', allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions/${i.subId}/rotate-secret` },
  { method: 'POST', pattern: '/v1/subscriptions/{id}/recover', allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions/${i.subId}/recover`, body: () => ({ sinceUtc: '2020-01-01T00:00:00Z' }) },
  // CONTRACT §13, a subscription's tools (routes-b).
  { method: 'POST', pattern: '/v1/subscriptions/{id}/test', allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions/${i.subId}/test`, body: () => ({}) },
  { method: 'GET', pattern: '/v1/subscriptions/{id}/stats', allow: [TENANT, CLIENT], path: (i) => `/v1/subscriptions/${i.subId}/stats` },

  // One operations webhook per tenant: B has none until its own PUT at the end.
  { method: 'GET', pattern: '/v1/operations-webhook', allow: [TENANT], b: 404 },
  {
    method: 'DELETE',
    pattern: '/v1/operations-webhook',
    allow: [TENANT],
    b: 404,
    fresh: async (ids) => {
      ok(await ob.call('PUT', '/v1/operations-webhook', { token: a.key, body: { url: rx.url('/ops-throwaway') } }), 'fresh operations webhook');
      return ids;
    },
  },
  { method: 'PUT', pattern: '/v1/operations-webhook', allow: [TENANT], body: () => ({ url: rx.url('/hijacked-ops') }), b: 'own' },

  // Another client of A imports into its own source system, where A's customer has no id: the
  // item is rejected (and announced to that client only), A's target is untouched. Last, as the
  // rejection (an event of the caller's own that names the id it sent) would show in its lists.
  {
    method: 'POST',
    pattern: '/v1/imports/targets',
    allow: [CLIENT],
    body: (i) => ({ targets: [{ externalId: i.targetExternalId, customerExternalId: `A-C-${tag}`, title: `A-title-${tag}` }] }),
    other: 'own',
    bClient: 'own',
  },

  // The portal (handlers_portal.cpp): the page is public; a bogus link is refused alike for all.
  { method: 'GET', pattern: '/portal', allow: PUBLIC }, // a 308 to /portal/, which fetch follows
  { method: 'GET', pattern: '/portal/', allow: PUBLIC },
  { method: 'GET', pattern: '/portal/{file}', allow: PUBLIC, path: () => '/portal/portal.js' },
  { method: 'POST', pattern: '/v1/portal/sessions', allow: PUBLIC, publicStatus: 401, body: () => ({ link: `obl_${'x'.repeat(43)}` }) },
  { method: 'POST', pattern: '/v1/clients/{id}/portal-link', allow: [TENANT], path: (i) => `/v1/clients/${i.clientId}/portal-link` },
  // A's other client sees its own name, which is one of tenant A's markers.
  { method: 'GET', pattern: '/v1/portal/me', allow: [TENANT, CLIENT], other: 'shared', b: 'own' },
  { method: 'DELETE', pattern: '/v1/portal/session', allow: [TENANT, CLIENT], other: 'own', b: 'own' },
];

function label(row) {
  return `${row.method} ${row.pattern}${row.note ? ` (${row.note})` : ''}`;
}

// What `caller` must get from `row`: a status, one of the words of the table, or 'owner'.
function expectation(row, caller) {
  if (row.allow === PUBLIC) return row.publicStatus ?? 200;
  if (caller.kind === NONE) return 401;
  if (!row.allow.includes(caller.kind)) return 403;
  if (caller.kind === OP || caller.rel === 'owner') return 'owner';
  const byPath = row.pattern.includes('{') ? 'hidden' : undefined;
  const exp = caller.rel === 'other' ? row.other : caller.rel === 'bClient' ? (row.bClient ?? row.b) : row.b;
  if (!(exp ?? byPath)) throw new Error(`ROUTES: ${label(row)} says nothing for ${caller.name}`);
  return exp ?? byPath;
}

// One call of `row` with `ids`; `sent` is what the caller itself sent (path and body).
async function call(row, ids, token) {
  const urlPath = row.path ? row.path(ids) : row.pattern;
  const body = row.body?.(ids);
  const r = await ob.call(row.method, urlPath, { token, body });
  return { r, sent: urlPath + JSON.stringify(body ?? null) };
}

// None of tenant A's strings in the answer, except those the caller itself sent.
function assertNoOwnerData(r, sent) {
  for (const m of markers) {
    if (sent.includes(m)) continue;
    assert.ok(!r.text.includes(m), `the answer carries tenant A's ${JSON.stringify(m)}: ${r.status} ${r.text}`);
  }
}

// An error answer with each of A's ids that the caller sent, where its message repeats it
// ("target 1 not found"), put back as MISSING's, to compare with the answer for MISSING's ids.
function asIfMissing(body, sent) {
  let message = body.error.message;
  for (const [k, v] of Object.entries(x)) {
    if (!sent.includes(String(v))) continue;
    const word = new RegExp(`\\b${String(v).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'g');
    message = message.replace(word, String(MISSING[k]));
  }
  return { ...body, error: { ...body.error, message } };
}

async function check(row, caller, exp) {
  const { r, sent } = await call(row, x, caller.token());
  assert.ok(r.status < 500, `${r.status} ${r.text}`);
  if (exp === 'hidden') {
    assertError(r, row.hiddenStatus ?? 404);
    const missing = (await call(row, MISSING, caller.token())).r;
    const seen = { status: r.status, body: asIfMissing(r.body, sent) };
    assert.deepEqual(seen, { status: missing.status, body: missing.body }, 'an id outside the scope must be answered as an id that does not exist');
  } else if (exp === 'empty') {
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data, [], r.text);
  } else if (exp === 'own' || exp === 'shared') {
    assert.ok(r.status >= 200 && r.status < 300, `${r.status} ${r.text}`);
  } else if (exp === 200 || row.allow === PUBLIC) {
    assert.equal(r.status, exp, r.text);
  } else {
    assertError(r, exp, { 401: 'unauthorized', 403: 'insufficient_scope' }[exp]);
  }
  if (exp !== 'shared') assertNoOwnerData(r, sent);
}

// Tenant A's objects as their owners see them; a refused write must leave all of it as it was.
async function snapshot() {
  const reads = [
    [a.key, '/v1/clients'],
    [a.key, `/v1/clients/${x.clientId}`],
    [a.key, '/v1/keys?limit=250'],
    [a.key, `/v1/customers/${x.customerId}`],
    [a.key, `/v1/locations/${x.locationId}`],
    [a.key, `/v1/contacts/${x.contactId}`],
    [a.key, `/v1/targets/${x.targetId}`],
    [a.key, `/v1/subscriptions?clientId=${x.clientId}`],
    [a.key, `/v1/subscriptions/${x.subId}`],
    [a.key, `/v1/subscriptions/${x.subId}/deliveries`],
    [a.key, `/v1/events/${x.eventId}`],
    [a.key, '/v1/operations-webhook'],
    [aOwner.key, '/v1/events?limit=250'],
    [aOwner.key, '/v1/subscriptions'],
  ];
  const out = {};
  for (const [token, p] of reads) {
    const r = await ob.call('GET', p, { token });
    assert.equal(r.status, 200, `${p}: ${r.text}`);
    out[p] = r.body;
  }
  return out;
}

before(async () => {
  await rx.start();
  await ob.start();
  a = await createTenant(ob, `A-tenant-${tag}`);
  b = await createTenant(ob, `B-tenant-${tag}`);
  aOwner = await createClient(ob, a.key, { name: `A-erp-${tag}`, sourceSystem: 'a_erp' });
  aOther = await createClient(ob, a.key, { name: `A-crm-${tag}`, sourceSystem: 'a_crm' });
  bClient = await createClient(ob, b.key, { name: 'B-erp', sourceSystem: 'b_erp' });

  const customer = { customerNumber: `A-CN-${tag}`, name: `A-customer-${tag}`, internalNotes: `A-cnotes-${tag}`, externalIds: { a_erp: `A-C-${tag}` } };
  const location = { customerId: 101, name: `A-location-${tag}`, address: `A-address-${tag}`, accessSecret: `A-access-${tag}`, externalIds: { a_erp: `A-L-${tag}` } };
  const contact = { customerId: 101, displayName: `A-contact-${tag}`, phone: `+49-${tag}`, email: `a-${tag}@example.com`, externalIds: { a_erp: `A-P-${tag}` } };
  ok(await ob.call('PUT', '/v1/customers/101', { token: a.key, body: customer }), 'customer');
  ok(await ob.call('PUT', '/v1/locations/201', { token: a.key, body: location }), 'location');
  ok(await ob.call('PUT', '/v1/contacts/301', { token: a.key, body: contact }), 'contact');

  // The owner client's subscription gets everything; the other client's only billing events,
  // of which there are none, so it never sees A's owner client's events.
  const subBody = { url: rx.url(`/a-owner-${tag}`), eventTypes: ['*'], description: `A-sub-${tag}`, headers: { 'X-A-Token': `A-header-${tag}` } };
  const sub = ok(await ob.call('POST', '/v1/subscriptions', { token: aOwner.key, body: subBody }), 'owner subscription');
  const otherSub = { url: rx.url(`/a-other-${tag}`), eventTypes: ['billing.event_created'] };
  ok(await ob.call('POST', '/v1/subscriptions', { token: aOther.key, body: otherSub }), 'other subscription');

  const item = { externalId: `A-T-${tag}`, customerExternalId: `A-C-${tag}`, locationExternalId: `A-L-${tag}`, contactExternalId: `A-P-${tag}`, title: `A-title-${tag}`, description: `A-desc-${tag}`, internalNotes: `A-tnotes-${tag}` };
  const imp = ok(await ob.call('POST', '/v1/imports/targets', { token: aOwner.key, body: { targets: [item] } }), 'import');
  assert.equal(imp.results[0].result, 'imported', JSON.stringify(imp));
  const targetId = imp.results[0].targetId;
  const ev = ok(await ob.call('POST', '/v1/events', { token: a.key, body: appointmentStarted(targetId) }), 'publish');
  const ops = ok(await ob.call('PUT', '/v1/operations-webhook', { token: a.key, body: { url: rx.url(`/a-ops-${tag}`) } }), 'operations webhook');

  const keys = (await ob.call('GET', '/v1/keys?limit=250', { token: a.key })).body.data;
  const keyId = (token) => keys.find((k) => k.prefix === token.slice(0, k.prefix.length)).keyId;
  x = {
    tenantId: a.tenantId,
    clientId: aOwner.clientId,
    tenantKeyId: keyId(a.key),
    clientKeyId: keyId(aOwner.key),
    customerId: 101,
    locationId: 201,
    contactId: 301,
    targetId,
    targetExternalId: item.externalId,
    subId: sub.subscriptionId,
    eventId: ev.eventId,
  };
  markers = [
    ...[a.key, aOwner.key].flatMap((k) => [k, k.slice(0, 12)]),
    `A-tenant-${tag}`,
    `A-erp-${tag}`,
    `A-crm-${tag}`,
    ...Object.values(customer).filter((v) => typeof v === 'string'),
    ...Object.values(location).filter((v) => typeof v === 'string'),
    ...Object.values(contact).filter((v) => typeof v === 'string'),
    ...Object.values(item),
    `A-C-${tag}`,
    `A-L-${tag}`,
    `A-P-${tag}`,
    `/a-owner-${tag}`,
    `A-sub-${tag}`,
    `A-header-${tag}`,
    sub.secret,
    `/a-ops-${tag}`,
    ops.secret,
    ev.eventId,
  ];

  // Both events delivered to the owner's subscription before anything is compared.
  await eventually(
    async () => {
      const d = (await ob.call('GET', `/v1/subscriptions/${x.subId}/deliveries`, { token: a.key })).body.data;
      return d.length === 2 && d.every((row) => row.status === 'succeeded');
    },
    { what: 'the fixture deliveries' },
  );
  snapshotBefore = await snapshot();
});

after(async () => {
  await ob.cleanup();
  await rx.stop();
});

test('the table covers every route the server registers, and nothing else', () => {
  const registered = new Set();
  for (const f of readdirSync(apiDir).filter((n) => /^handlers_.*\.cpp$/.test(n) && !n.endsWith('_test.cpp'))) {
    for (const m of readFileSync(path.join(apiDir, f), 'utf8').matchAll(/router\.Add(?:Async)?\(\s*"([A-Z]+)",\s*"([^"]+)"/g)) registered.add(`${m[1]} ${m[2]}`);
  }
  assert.ok(registered.size >= 40, `only ${registered.size} routes found in ${apiDir}: has the registration changed?`);
  const tabled = new Set(ROUTES.map((r) => `${r.method} ${r.pattern}`));
  assert.deepEqual([...registered].filter((r) => !tabled.has(r)), [], 'routes missing from ROUTES in scopes.test.mjs: add a row for each');
  assert.deepEqual([...tabled].filter((r) => !registered.has(r)), [], 'rows of ROUTES that the server does not register');
});

describe('callers other than the owner', () => {
  for (const row of ROUTES) {
    test(label(row), async (t) => {
      for (const caller of CALLERS) {
        const exp = expectation(row, caller);
        if (exp !== 'owner') await t.test(`${caller.name} → ${exp}`, () => check(row, caller, exp));
      }
    });
  }
});

test('no refused call changed any of tenant A', async () => {
  await new Promise((r) => setTimeout(r, 300)); // a wrongly queued redelivery would show by now
  assert.deepEqual(await snapshot(), snapshotBefore);
});

// Last, as they change A's objects: the owners succeed where the others were refused.
describe('the owners', () => {
  for (const row of ROUTES) {
    test(label(row), async (t) => {
      for (const caller of CALLERS) {
        if (expectation(row, caller) !== 'owner') continue;
        await t.test(caller.name, async () => {
          const ids = row.fresh ? await row.fresh(x) : x;
          const { r } = await call(row, ids, caller.token());
          assert.ok(r.status >= 200 && r.status < 300, `${r.status} ${r.text}`);
          row.ownerCheck?.(r);
        });
      }
    });
  }
});
