// The seed's example end to end: customer 12 / location 34 / contact 56, target DEL-2026-000918
// imported from logistics_erp, every lifecycle event through to billing.event_created, and a
// second client (crm) receiving the same events with its own external ids. Every webhook is
// verified with the public Standard Webhooks library.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Outbound, Receiver, createClient, createTenant, eventually } from './harness.mjs';

// Planted in every internal note and access secret: none may ever come back out.
const MARKERS = {
  customerNotes: 'MARKER-CUSTOMER-NOTES-7f3a',
  locationNotes: 'MARKER-LOCATION-NOTES-91bc',
  accessSecret: 'MARKER-ACCESS-SECRET-d00r',
  contactNotes: 'MARKER-CONTACT-NOTES-5e5e',
  targetNotes: 'MARKER-TARGET-NOTES-a1a1',
  reportNotes: 'MARKER-REPORT-NOTES-b2b2',
  billingNotes: 'MARKER-BILLING-NOTES-c3c3',
};
const ENVELOPE_KEYS = ['eventId', 'eventType', 'eventVersion', 'tenantId', 'occurredAtUtc', 'deliveryId', 'source', 'data'];
const LONG_SUMMARY =
  'Replaced the pump seal and the pressure sensor in the cold room of the Essen Center. ' +
  'The compressor showed signs of wear and should be checked again within four weeks; the ' +
  'customer was informed and signed the report on site. Spare parts were taken from van stock ' +
  'and need to be reordered.';

// The most verbose log level, so that the log checks below see every line the server can write.
const ob = new Outbound({ args: ['--log-level', 'trace'] });
const rx = new Receiver();
let tenant, erp, crm;
const subs = {};
const responses = []; // every API response body, for the marker check

async function call(method, path, opts) {
  const r = await ob.call(method, path, opts);
  responses.push(r.text);
  return r;
}

async function subscribe(client, name, body) {
  const r = await call('POST', '/v1/subscriptions', {
    token: client.key,
    body: { url: rx.url(`/${name}`), eventTypes: ['*'], ...body },
  });
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.secret, /^whsec_[A-Za-z0-9+/=]+$/);
  subs[name] = { id: r.body.subscriptionId, secret: r.body.secret, path: `/${name}`, body: r.body };
}

before(async () => {
  await rx.start();
  await ob.start();
  tenant = await createTenant(ob, 'Ordinavo Test Tenant');
  erp = await createClient(ob, tenant.key, { name: 'Logistics ERP', sourceSystem: 'logistics_erp', billingDetailsAllowed: true });
  crm = await createClient(ob, tenant.key, { name: 'CRM', sourceSystem: 'crm' });

  let r = await call('PUT', '/v1/customers/12', {
    token: tenant.key,
    body: {
      customerNumber: 'RRM-001',
      name: 'Rhein-Ruhr Medical Supply',
      internalNotes: MARKERS.customerNotes,
      externalIds: { logistics_erp: 'CUST-10042', crm: 'CRM-C-77' },
    },
  });
  assert.ok([200, 201].includes(r.status), r.text);
  r = await call('PUT', '/v1/locations/34', {
    token: tenant.key,
    body: {
      customerId: 12,
      name: 'Essen Center',
      address: 'Huyssenallee 1, Essen',
      accessSecret: MARKERS.accessSecret,
      internalNotes: MARKERS.locationNotes,
      externalIds: { logistics_erp: 'LOC-ESSEN-01' },
    },
  });
  assert.ok([200, 201].includes(r.status), r.text);
  r = await call('PUT', '/v1/contacts/56', {
    token: tenant.key,
    body: {
      customerId: 12,
      displayName: 'Anna Weber',
      phone: '+49 201 555 0100',
      email: 'anna.weber@example.com',
      internalNotes: MARKERS.contactNotes,
      externalIds: { logistics_erp: 'CONT-44', crm: 'CRM-P-9' },
    },
  });
  assert.ok([200, 201].includes(r.status), r.text);

  // One request open at a time: its attempts end in the order they begin, so its delivery log
  // (newest first, in the order the attempts were recorded: docs/API.md) is newest first by
  // attemptedAtUtc too. Attempts open at once may end out of that order (CI saw one).
  await subscribe(erp, 'erp-default', { maxConcurrency: 1 });
  await subscribe(erp, 'erp-full', { options: { includeSummaryPreview: true, includeBillingDetails: true } });
  await subscribe(crm, 'crm-default', {});
  await subscribe(crm, 'crm-billing', { options: { includeBillingDetails: true, includeCustomerContext: false, includeContactDetails: false } });
});

after(async () => {
  await ob.cleanup();
  await rx.stop();
});

let targetId;

test('import: one good item and one bad item in one batch', async () => {
  const r = await call('POST', '/v1/imports/targets', {
    token: erp.key,
    body: {
      targets: [
        {
          externalId: 'DEL-2026-000918',
          customerExternalId: 'CUST-10042',
          locationExternalId: 'LOC-ESSEN-01',
          contactExternalId: 'CONT-44',
          title: 'Deliver cold-room spare parts',
          earliestStartUtc: '2026-06-25T08:00:00+02:00',
          durationMinutes: 45,
          internalNotes: MARKERS.targetNotes,
        },
        { externalId: 'DEL-BAD-1', customerExternalId: 'CUST-10042', customerNumber: 'RRM-001' },
      ],
    },
  });
  assert.equal(r.status, 200, r.text);
  const [good, bad] = r.body.results;
  assert.equal(good.result, 'imported');
  assert.equal(good.externalId, 'DEL-2026-000918');
  assert.ok(Number.isInteger(good.targetId));
  targetId = good.targetId;
  assert.equal(bad.result, 'rejected');
  assert.equal(bad.targetId, null);
  const fields = bad.errors.map((e) => e.field).sort();
  assert.deepEqual(fields, ['customerNumber', 'title']);
  const cn = bad.errors.find((e) => e.field === 'customerNumber');
  assert.match(cn.message, /customer record/);

  // The crm system learns its own id for the target.
  const p = await call('PATCH', `/v1/targets/${targetId}`, { token: tenant.key, body: { externalIds: { crm: 'CRM-JOB-1' } } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.externalIds.crm, 'CRM-JOB-1');
  assert.equal(p.body.externalIds.logistics_erp, 'DEL-2026-000918');
});

const lifecycle = [
  ['target.scheduled', { appointmentId: 441, scheduledStartUtc: '2026-06-25T14:00:00Z', scheduledEndUtc: '2026-06-25T15:00:00Z' }, 'Scheduled'],
  ['route.suggestion.created', { appointmentId: 441, routeId: 77, sequence: 3, plannedArrivalUtc: '2026-06-25T13:55:00Z' }, 'RouteSuggested'],
  ['route.published', { appointmentId: 441, routeId: 77, sequence: 3, plannedArrivalUtc: '2026-06-25T13:55:00Z' }, 'RoutePublished'],
  ['appointment.started', { appointmentId: 441, startedAtUtc: '2026-06-25T14:02:00Z' }, 'Started'],
  ['appointment.problem_reported', { appointmentId: 441, problem: { code: 'PART_MISSING', description: 'Seal kit incomplete' } }, 'ProblemReported'],
  ['appointment.completed', { appointmentId: 441, completedAtUtc: '2026-06-25T14:31:00Z' }, 'Completed'],
  ['visit_report.approved', { appointmentId: 441, visitReportId: 9001, summary: LONG_SUMMARY, internalNotes: MARKERS.reportNotes }, 'ReportApproved'],
  ['visit_report.follow_up_required', { appointmentId: 441, visitReportId: 9001, followUpReason: 'Compressor check', summary: 'Short summary.' }, 'FollowUpRequired'],
  [
    'billing.event_created',
    {
      appointmentId: 441,
      visitReportId: 9001,
      billingEventId: 5005,
      billing: { amount: '149.50', currency: 'EUR', lines: [{ description: 'Seal kit', quantity: 1, unitPrice: '99.50' }, { description: 'Labour', quantity: 0.5, unitPrice: 100 }] },
      internalNotes: MARKERS.billingNotes,
    },
    'BillingTriggered',
  ],
];
const published = new Map();

test('publish every lifecycle event of the seed', async () => {
  let minute = 0;
  for (const [eventType, data] of lifecycle) {
    const occurredAtUtc = `2026-06-25T14:${String(10 + minute++).padStart(2, '0')}:00Z`;
    const r = await call('POST', '/v1/events', { token: tenant.key, body: { eventType, targetId, occurredAtUtc, data } });
    assert.equal(r.status, 202, `${eventType}: ${r.text}`);
    assert.match(r.body.eventId, /^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    published.set(eventType, { eventId: r.body.eventId, occurredAtUtc });
  }
});

test('a re-import updates, then cancels', async () => {
  const base = {
    externalId: 'DEL-2026-000918',
    customerExternalId: 'CUST-10042',
    locationExternalId: 'LOC-ESSEN-01',
    contactExternalId: 'CONT-44',
    title: 'Deliver cold-room spare parts (2 boxes)',
    earliestStartUtc: '2026-06-25T08:00:00+02:00',
    durationMinutes: 45,
    internalNotes: MARKERS.targetNotes,
  };
  let r = await call('POST', '/v1/imports/targets', { token: erp.key, body: { targets: [base] } });
  assert.equal(r.body.results[0].result, 'updated', r.text);
  r = await call('POST', '/v1/imports/targets', { token: erp.key, body: { targets: [base] } });
  assert.equal(r.body.results[0].result, 'unchanged', r.text);
  r = await call('POST', '/v1/imports/targets', { token: erp.key, body: { targets: [{ ...base, cancelled: true, cancelReason: 'Customer postponed' }] } });
  assert.equal(r.body.results[0].result, 'cancelled', r.text);
});

function byType(list) {
  const m = new Map();
  for (const w of list) m.set(w.payload.eventType, w);
  return m;
}

test('every subscription receives every event, verified by the Standard Webhooks library', async () => {
  // erp subscriptions: 13 (including target.rejected); crm: 12 (rejected goes to the importer only).
  await eventually(() => rx.received('/erp-default').length >= 13 && rx.received('/erp-full').length >= 13 && rx.received('/crm-default').length >= 12 && rx.received('/crm-billing').length >= 12, { what: 'all webhooks' });
  await new Promise((r) => setTimeout(r, 300)); // nothing extra arrives
  assert.equal(rx.received('/erp-default').length, 13);
  assert.equal(rx.received('/crm-default').length, 12);

  for (const s of Object.values(subs)) {
    const list = rx.verify(s.path, s.secret); // throws if any signature does not verify
    for (const w of list) {
      assert.deepEqual(Object.keys(w.payload), ENVELOPE_KEYS);
      assert.match(w.payload.eventId, /^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.match(w.payload.deliveryId, /^del_[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.equal(w.payload.eventVersion, 'v1');
      assert.equal(w.payload.source, 'ordinavo');
      assert.equal(w.payload.tenantId, tenant.tenantId);
      assert.equal(w.headers['webhook-id'], w.payload.eventId);
      assert.equal(w.headers['ordinavo-event-type'], w.payload.eventType);
      assert.equal(w.headers['ordinavo-delivery-id'], w.payload.deliveryId);
      assert.equal(w.headers['ordinavo-attempt'], '1');
      assert.equal(w.headers['content-type'], 'application/json');
      assert.match(w.headers['user-agent'], /Outbound/i);
      assert.match(w.payload.occurredAtUtc, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/);
    }
  }
  const erpEvents = byType(rx.verify('/erp-default', subs['erp-default'].secret));
  const crmEvents = byType(rx.verify('/crm-default', subs['crm-default'].secret));
  assert.deepEqual([...erpEvents.keys()].sort(), [
    'appointment.completed', 'appointment.problem_reported', 'appointment.started', 'billing.event_created',
    'route.published', 'route.suggestion.created', 'target.cancelled', 'target.imported', 'target.rejected',
    'target.scheduled', 'target.updated', 'visit_report.approved', 'visit_report.follow_up_required',
  ]);
  assert.ok(!crmEvents.has('target.rejected'));

  // The seed's example, as the logistics ERP sees it.
  const completed = erpEvents.get('appointment.completed').payload;
  assert.equal(completed.eventId, published.get('appointment.completed').eventId);
  assert.equal(completed.occurredAtUtc, published.get('appointment.completed').occurredAtUtc);
  assert.deepEqual(Object.keys(completed.data).slice(0, 3), ['targetId', 'externalId', 'sourceSystem']);
  assert.equal(completed.data.targetId, targetId);
  assert.equal(completed.data.externalId, 'DEL-2026-000918');
  assert.equal(completed.data.sourceSystem, 'logistics_erp');
  assert.equal(completed.data.appointmentId, 441);
  assert.equal(completed.data.completedAtUtc, '2026-06-25T14:31:00Z');
  assert.equal(completed.data.status, 'Completed');
  assert.deepEqual(completed.data.customerContext, {
    customer: { ordinavoCustomerId: 12, externalId: 'CUST-10042', customerNumber: 'RRM-001', name: 'Rhein-Ruhr Medical Supply' },
    location: { ordinavoLocationId: 34, externalId: 'LOC-ESSEN-01', name: 'Essen Center' },
    contact: { ordinavoContactId: 56, externalId: 'CONT-44', displayName: 'Anna Weber', phone: '+49 201 555 0100', email: 'anna.weber@example.com' },
  });

  // The same event as the CRM sees it: its own ids, null where it has none.
  const crmCompleted = crmEvents.get('appointment.completed').payload;
  assert.equal(crmCompleted.eventId, completed.eventId);
  assert.notEqual(crmCompleted.deliveryId, completed.deliveryId);
  assert.equal(crmCompleted.data.externalId, 'CRM-JOB-1');
  assert.equal(crmCompleted.data.sourceSystem, 'crm');
  assert.equal(crmCompleted.data.customerContext.customer.externalId, 'CRM-C-77');
  assert.equal(crmCompleted.data.customerContext.customer.customerNumber, 'RRM-001');
  assert.equal(crmCompleted.data.customerContext.location.externalId, null);
  assert.equal(crmCompleted.data.customerContext.contact.externalId, 'CRM-P-9');
  // Imported before the crm id was added: null there.
  assert.equal(crmEvents.get('target.imported').payload.data.externalId, null);

  // Every type's status and fields.
  for (const [eventType, data, status] of lifecycle) {
    const d = erpEvents.get(eventType).payload.data;
    assert.equal(d.status, status, eventType);
    for (const [k, v] of Object.entries(data)) {
      if (k === 'summary' || k === 'internalNotes' || k === 'billing') continue;
      assert.deepEqual(d[k], v, `${eventType}.${k}`);
    }
    assert.ok(!('summary' in d) && !('summaryPreview' in d) && !('billing' in d) && !('internalNotes' in d), eventType);
  }
  assert.equal(erpEvents.get('target.imported').payload.data.status, 'Imported');
  const rejected = erpEvents.get('target.rejected').payload.data;
  assert.equal(rejected.targetId, null);
  assert.equal(rejected.externalId, 'DEL-BAD-1');
  assert.equal(rejected.status, 'Rejected');
  assert.ok(rejected.errors.some((e) => e.field === 'title'));
  const updated = erpEvents.get('target.updated').payload.data;
  assert.deepEqual(updated.changedFields, ['title']);
  const cancelled = erpEvents.get('target.cancelled').payload.data;
  assert.equal(cancelled.status, 'Cancelled');
  assert.equal(cancelled.reason, 'Customer postponed');
});

test('payload options: preview and billing only where asked and allowed', async () => {
  const full = byType(rx.verify('/erp-full', subs['erp-full'].secret));
  const approved = full.get('visit_report.approved').payload.data;
  const preview = approved.summaryPreview;
  assert.ok([...preview].length <= 200, 'at most 200 code points');
  assert.ok(preview.endsWith('…'));
  assert.ok(LONG_SUMMARY.startsWith(preview.slice(0, -1).trimEnd()));
  assert.equal(full.get('visit_report.follow_up_required').payload.data.summaryPreview, 'Short summary.');
  const billing = full.get('billing.event_created').payload.data.billing;
  assert.deepEqual(billing, { amount: '149.50', currency: 'EUR', lines: [{ description: 'Seal kit', quantity: 1, unitPrice: '99.50' }, { description: 'Labour', quantity: 0.5, unitPrice: 100 }] });
  // Billing values pass through exactly, as published.
  const raw = rx.received('/erp-full').find((r) => r.body.includes('billing.event_created')).body;
  assert.ok(raw.includes('"amount":"149.50"') && raw.includes('"quantity":0.5'), raw);

  // crm asked for billing but is not allowed: no billing; both context options off: no context.
  const crmBilling = byType(rx.verify('/crm-billing', subs['crm-billing'].secret));
  const b = crmBilling.get('billing.event_created').payload.data;
  assert.ok(!('billing' in b));
  assert.ok(!('customerContext' in b));
  assert.equal(subs['crm-billing'].body.effectiveOptions.includeBillingDetails, false);
});

test('delivery log and event view', async () => {
  const { eventId } = published.get('appointment.completed');
  const r = await call('GET', `/v1/events/${eventId}`, { token: tenant.key });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.event.eventId, eventId);
  assert.equal(r.body.event.eventType, 'appointment.completed');
  assert.ok(!('deliveryId' in r.body.event) && !('data' in r.body.event));
  assert.equal(r.body.deliveries.length, 4);
  for (const d of r.body.deliveries) {
    assert.equal(d.status, 'succeeded');
    assert.equal(d.attempts.length, 1);
    assert.equal(d.attempts[0].httpStatus, 200);
    const sent = rx.received(Object.values(subs).find((s) => s.id === d.subscriptionId).path).find((w) => JSON.parse(w.body).eventId === eventId);
    assert.deepEqual(d.payload, JSON.parse(sent.body));
  }
  // A client key sees only its own subscriptions' deliveries.
  const c = await call('GET', `/v1/events/${eventId}`, { token: crm.key });
  assert.equal(c.status, 200, c.text);
  assert.deepEqual(c.body.deliveries.map((d) => d.subscriptionId).sort(), [subs['crm-default'].id, subs['crm-billing'].id].sort());

  const log = await call('GET', `/v1/subscriptions/${subs['erp-default'].id}/deliveries?limit=5`, { token: erp.key });
  assert.equal(log.status, 200, log.text);
  assert.equal(log.body.data.length, 5);
  assert.ok(log.body.nextCursor);
  const times = log.body.data.map((a) => Date.parse(a.attemptedAtUtc));
  assert.deepEqual([...times].sort((x, y) => y - x), times, 'newest first');
  const page2 = await call('GET', `/v1/subscriptions/${subs['erp-default'].id}/deliveries?limit=250&cursor=${encodeURIComponent(log.body.nextCursor)}`, { token: erp.key });
  assert.equal(page2.body.data.length, 8);
  assert.equal(page2.body.nextCursor, null);

  const events = await call('GET', `/v1/events?targetId=${targetId}&limit=250`, { token: tenant.key });
  assert.equal(events.status, 200, events.text);
  assert.equal(events.body.data.length, 12);
  const types = await call('GET', '/v1/event-types', { token: crm.key });
  assert.equal(types.body.data.length, 13);
});

test('no internal note or access secret appears in a payload, a response or the log', async () => {
  // Read back everything that might carry them.
  await call('GET', '/v1/customers/12', { token: tenant.key });
  await call('GET', '/v1/locations/34', { token: tenant.key });
  await call('GET', '/v1/contacts/56', { token: tenant.key });
  await call('GET', `/v1/targets/${targetId}`, { token: tenant.key });
  await call('GET', `/v1/targets?externalId=DEL-2026-000918`, { token: erp.key });
  for (const { eventId } of published.values()) await call('GET', `/v1/events/${eventId}`, { token: tenant.key });
  for (const s of Object.values(subs)) await call('GET', `/v1/subscriptions/${s.id}/deliveries?limit=250`, { token: tenant.key });
  const everything = [
    ...Object.values(subs).flatMap((s) => rx.received(s.path).map((r) => r.body)),
    ...responses,
    ob.log,
  ].join('\n');
  for (const [name, marker] of Object.entries(MARKERS)) assert.ok(!everything.includes(marker), `${name} leaked`);
  // Secrets and keys are not in the log either (a log at debug/trace level: request lines too).
  assert.match(ob.log, / debug /, 'the log is not at the most verbose level');
  for (const s of Object.values(subs)) assert.ok(!ob.log.includes(s.secret.slice(6)), 'signing secret in log');
  assert.ok(!ob.log.includes(tenant.key) && !ob.log.includes(erp.key), 'api key in log');
});
