// Many processes on one PostgreSQL database (CONTRACT.md §12): `api` and `worker` processes and
// several `all` processes share one database; every promise of §6 holds for the set of them.
//   1. kill -9 of a worker at random moments under load: nothing lost; duplicates only for what
//      was in flight at a kill (sending, or answered and not yet recorded);
//   2. three `all` processes, events published round-robin: nothing lost;
//   3. SIGTERM of workers under load: nothing lost, no duplicates;
//   4. rateLimitPerSecond and maxConcurrency: 1 hold across two workers while work moves;
//   5. ordered delivery across two workers;
//   6. a change through one process (URL, disable, key revoked) in force in the others within 2 s;
//   7. the same Idempotency-Key at two processes at once: one event;
//   8. the database stopped and started under load (a PostgreSQL server of this test's own):
//      503 store_unavailable meanwhile, nothing accepted is lost;
//   9. a worker started onto a backlog of due deliveries sends all of it.
// PostgreSQL only: on SQLite (e2e.scaleout) the whole file is skipped. Every scenario has its own
// database, bounded counts and deadlines; the leases are short (--lease 2s) so that a killed
// process's work comes back within seconds. SCALEOUT_DEBUG=1 prints the processes' logs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  Outbound,
  PgCluster,
  Receiver,
  dbKind,
  eventually,
  maxInWindow,
  receivedAt,
  repeatsExplainedByKills,
  seedTargets,
  sleep,
  subscribe,
} from './harness.mjs';

const SKIP = dbKind !== 'postgres'
  ? `scale-out needs PostgreSQL (OUTBOUND_E2E_DB=postgres; CTest runs this file as e2e_pg.scaleout): skipped on ${dbKind}`
  : false;

const LEASE = '2s';
// Long enough that no delivery goes dead while its process is being killed and restarted (the
// receivers here never fail unless a test says so).
const RETRY = '0s,200ms,500ms,1s,1s,2s,2s,2s,2s,2s,2s,2s';

const rx = new Receiver();

// Processes on one fresh database: specs[i] = { role, args? }. The first creates the database
// (and starts alone, so that it migrates it), the others share it.
async function startFleet(specs, { retrySchedule = RETRY, lease = LEASE, pgServer, args = [] } = {}) {
  const mk = (spec, shareDb) => new Outbound({
    retrySchedule,
    pgServer,
    shareDb,
    args: ['--role', spec.role, '--lease', lease, '--request-timeout', '5s', ...args, ...(spec.args || [])],
  });
  const first = mk(specs[0]);
  const fleet = [first];
  try {
    await first.start();
    const rest = specs.slice(1).map((s) => mk(s, first));
    fleet.push(...rest);
    await Promise.all(rest.map((o) => o.start()));
  } catch (e) {
    await stopFleet(fleet);
    throw e;
  }
  return fleet;
}

// Stops the sharers first, then the owner of the database (which drops it).
async function stopFleet(fleet) {
  for (const o of fleet.slice(1)) await o.cleanup().catch(() => {});
  await fleet[0].cleanup().catch(() => {});
}

async function sub(api, erp, path, extra = {}) {
  return { ...(await subscribe(api, erp, rx.url(path), extra)), path };
}

function eventBody(targetId, n, occurredAtUtc) {
  return {
    eventType: 'appointment.started',
    targetId,
    occurredAtUtc: occurredAtUtc || new Date(Date.UTC(2026, 5, 25, 14, 0, 0) + n * 1000).toISOString(),
    data: { appointmentId: n + 1, startedAtUtc: '2026-06-25T14:02:00Z' },
  };
}

// POST /v1/events through `api`, answered 202; a 503 (the store busy or away: CONTRACT §6
// backpressure) is retried as a client would, a bounded number of times. Returns the eventId.
async function publishOne(api, tenant, body, headers = {}) {
  let r;
  for (let i = 0; i < 40; i++) {
    r = await api.call('POST', '/v1/events', { token: tenant.key, body, headers });
    if (r.status !== 503) break;
    await sleep(250);
  }
  assert.equal(r.status, 202, r.text);
  return r.body.eventId;
}

// Publishes up to `count` events with `concurrency` publishers, event n to apis[n % apis.length],
// each publisher pausing `pauseMs` between its requests; stops at `deadlineMs` after the start.
// Only 202 answers count as accepted; 503 (backpressure, store unavailable) and requests that
// failed on the way (a process restarting) are counted, not accepted; anything else fails.
async function publishMany({ apis, tenant, targetIds, count, concurrency = 4, pauseMs = 0, deadlineMs = 30000, stop = () => false }) {
  const started = Date.now();
  const accepted = new Map(); // eventId -> event number
  const refused = { status503: 0, failed: 0 };
  let next = 0;
  async function publisher() {
    while (next < count && Date.now() - started < deadlineMs && !stop()) {
      const n = next++;
      const api = apis[n % apis.length];
      try {
        const r = await api.call('POST', '/v1/events', { token: tenant.key, body: eventBody(targetIds[n % targetIds.length], n) });
        if (r.status === 202) accepted.set(r.body.eventId, n);
        else if (r.status === 503) refused.status503++;
        else assert.fail(`publish answered ${r.status} ${r.text}`);
      } catch (e) {
        if (e.code === 'ERR_ASSERTION') throw e;
        refused.failed++;
      }
      if (pauseMs) await sleep(pauseMs);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, publisher));
  return { accepted, refused, published: next, ms: Date.now() - started };
}

// How many (event, subscription) pairs of `accepted` have not arrived yet (by webhook-id).
function missing(subs, accepted) {
  let lost = 0;
  for (const s of subs) {
    const got = new Set(rx.received(s.path).map((r) => r.headers['webhook-id']));
    for (const id of accepted) if (!got.has(id)) lost++;
  }
  return lost;
}

// Waits (bounded) until every accepted event reached every subscription; then verifies every
// webhook received with the Standard Webhooks verifier and counts what was lost and the
// duplicates (webhooks beyond the first per eventId and subscription).
async function settle(subs, accepted, { timeoutMs = 30000 } = {}) {
  const ids = [...accepted];
  const t0 = Date.now();
  await eventually(() => missing(subs, ids) === 0, { timeoutMs, intervalMs: 100, what: 'every accepted event at every subscription' }).catch(() => {});
  const drainMs = Date.now() - t0;
  const lost = missing(subs, ids);
  let duplicates = 0;
  let received = 0;
  const perSub = {};
  for (const s of subs) {
    const at = receivedAt(rx, s); // throws on any bad signature or a deliveryId used twice
    received += at.received;
    duplicates += at.duplicates;
    perSub[s.path] = at;
  }
  return { lost, duplicates, received, perSub, drainMs };
}

// Requests being answered right now on the given paths.
function inFlightAt(paths) {
  return paths.reduce((n, p) => n + (rx.inFlight.get(p) || 0), 0);
}

// The attempts of a subscription, from its delivery log (all pages): deliveryId -> row.
async function attemptLog(api, token, subscriptionId) {
  const rows = new Map();
  let cursor = '';
  for (let page = 0; page < 100; page++) {
    const r = await api.call('GET', `/v1/subscriptions/${subscriptionId}/deliveries?limit=250${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token });
    assert.equal(r.status, 200, r.text);
    for (const row of r.body.data) if (row.deliveryId) rows.set(row.deliveryId, row);
    if (!r.body.nextCursor) break;
    cursor = r.body.nextCursor;
  }
  return rows;
}

// The warnings of a fleet's processes (for failure messages).
function warnings(fleet, max = 8) {
  // (Each process warns "the lease expired ...; dropped 0 queued deliveries" once at start-up.)
  const lines = fleet.flatMap((o, i) => o.log.split('\n').map((l) => `process ${i}: ${l}`));
  return lines.filter((l) => / (warning|error|critical) /.test(l) && !/dropped 0 queued/.test(l)).slice(0, max).join('\n') || '(none)';
}

// SCALEOUT_DEBUG=1: the warnings and lifecycle lines of every process of a fleet.
function debugLogs(fleet) {
  if (!process.env.SCALEOUT_DEBUG) return;
  for (const [i, o] of fleet.entries()) {
    console.log(`--- log of process ${i}\n${o.log.split('\n').filter((l) => !/ info /.test(l) || /listening|signal|stopped/.test(l)).join('\n')}`);
  }
}

function randomInt(lo, hi) {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

describe('scale-out on PostgreSQL', { skip: SKIP }, () => {
  before(async () => {
    await rx.start();
  });
  after(async () => {
    await rx.stop();
  });

  test('1. kill -9 of a worker at random moments, three times: nothing lost, duplicates bounded by the attempts in flight', { timeout: 90000 }, async () => {
    const fleet = await startFleet([{ role: 'api' }, { role: 'worker' }, { role: 'worker' }]);
    try {
      const [api, ...workers] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(api, 3);
      const CAP = 4; // maxConcurrency of each subscription
      const subs = [];
      for (const name of ['a', 'b', 'c']) {
        const s = await sub(api, erp, `/kill/${name}`, { maxConcurrency: CAP });
        subs.push(s);
        // A receiver that takes a moment: attempts are in flight when a worker dies.
        rx.decide(s.path, () => ({ status: 200, delayMs: 60 }));
      }
      const EVENTS = 300;
      const KILLS = 3;
      const started = Date.now();
      const kills = [];
      const killer = (async () => {
        for (let k = 0; k < KILLS; k++) {
          // A random moment in the k-th third of the publishing period (~5 s).
          await sleep(Math.max(0, k * 1700 + randomInt(200, 1500) - (Date.now() - started)));
          const i = randomInt(0, workers.length - 1);
          const w = workers[i];
          const inFlight = inFlightAt(subs.map((s) => s.path));
          const at = Date.now();
          const r = await w.stop('SIGKILL');
          assert.equal(r.signal, 'SIGKILL');
          kills.push({ at, atMs: at - started, worker: i, receiverInFlight: inFlight });
          await sleep(randomInt(0, 500));
          await w.start(); // the same database: a new process, a new lease owner
        }
      })();
      const pub = await publishMany({ apis: [api], tenant, targetIds, count: EVENTS, concurrency: 4, pauseMs: 60, deadlineMs: 20000 });
      await killer;
      assert.ok(pub.accepted.size >= EVENTS / 2, `too few events accepted: ${pub.accepted.size} of ${pub.published} (${JSON.stringify(pub.refused)})`);
      const t = await settle(subs, pub.accepted.keys(), { timeoutMs: 30000 });
      // Duplicates only for attempts that were in flight in a killed process (CONTRACT §12). An
      // attempt is in flight from its start until its outcome is committed, which comes a little
      // after the receiver's answer: IN_FLIGHT_MS covers the receiver's 60 ms and that commit.
      // So every repeat of a webhook must follow a kill that came at most IN_FLIGHT_MS after
      // the copy before it; and per kill, at most what was sending (Σ maxConcurrency: all three
      // subscriptions may be the dead worker's) plus what had been answered in the IN_FLIGHT_MS
      // before it (answered, outcome not yet committed).
      const IN_FLIGHT_MS = 1000;
      // The receiver runs in this process: a request the worker wrote just before it died may be
      // recorded a moment after the kill was sent (one turn of a busy event loop), as in
      // crash.test.mjs. (Seen in CI: a copy recorded 1 ms after its kill, sent again after the
      // lease ran out.)
      const LAG_MS = 250;
      const { unexplained, worstLag, bound } = repeatsExplainedByKills(rx, subs, kills, {
        inFlightMs: IN_FLIGHT_MS,
        lagMs: LAG_MS,
        cap: subs.length * CAP,
        started,
      });
      const capBound = KILLS * subs.length * CAP;
      console.log(`scenario 1: ${pub.accepted.size} events accepted in ${pub.ms} ms (refused ${JSON.stringify(pub.refused)}); kills ${JSON.stringify(kills.map(({ at, ...k }) => k))}`);
      console.log(`scenario 1: ${t.received} webhooks for ${subs.length} subscriptions, drained ${t.drainMs} ms after publishing, total ${Date.now() - started} ms`);
      console.log(`scenario 1: lost = ${t.lost}, duplicates = ${t.duplicates} (Σ maxConcurrency per kill: ${capBound}; with the attempts answered in the ${IN_FLIGHT_MS} ms before each kill: ${bound}); the earliest repeated copy came ${worstLag} ms before its kill ${JSON.stringify(t.perSub)}`);
      if (process.env.SCALEOUT_DEBUG) {
        for (const s of subs) {
          const got = new Set(rx.received(s.path).map((r) => r.headers['webhook-id']));
          const lostIds = [...pub.accepted.keys()].filter((id) => !got.has(id));
          for (const id of lostIds.slice(0, 3)) {
            const e = await api.call('GET', `/v1/events/${id}`, { token: tenant.key });
            console.log('LOST', s.path, id, JSON.stringify(e.body.deliveries.map((d) => ({ sub: d.subscriptionId, status: d.status, attempts: d.attempts.length }))));
          }
        }
        debugLogs(fleet);
      }
      assert.equal(t.lost, 0, `accepted events lost; the processes' warnings:\n${warnings(fleet)}`);
      assert.deepEqual(unexplained, [], 'webhooks repeated without a kill while they were in flight');
      assert.ok(t.duplicates <= bound, `${t.duplicates} duplicates > ${bound}`);
    } finally {
      await stopFleet(fleet);
    }
  });

  test('2. three `all` processes, events published round-robin to all of them: nothing lost', { timeout: 90000 }, async () => {
    // The default lease: nobody dies here, so no lease may run out either.
    const fleet = await startFleet([{ role: 'all' }, { role: 'all' }, { role: 'all' }], { lease: '30s' });
    try {
      const { tenant, erp, targetIds } = await seedTargets(fleet[0], 3);
      const subs = [await sub(fleet[1], erp, '/rr/a'), await sub(fleet[2], erp, '/rr/b', { maxConcurrency: 2 })];
      const started = Date.now();
      const pub = await publishMany({ apis: fleet, tenant, targetIds, count: 240, concurrency: 6, deadlineMs: 20000 });
      assert.ok(pub.accepted.size >= 120, `too few events accepted: ${pub.accepted.size} (${JSON.stringify(pub.refused)})`);
      const t = await settle(subs, pub.accepted.keys(), { timeoutMs: 30000 });
      console.log(`scenario 2: ${pub.accepted.size} events accepted round-robin by 3 processes in ${pub.ms} ms; ${t.received} webhooks, drained ${t.drainMs} ms later, total ${Date.now() - started} ms`);
      console.log(`scenario 2: lost = ${t.lost}, duplicates = ${t.duplicates}`);
      assert.equal(t.lost, 0, 'accepted events lost');
      // Nobody died and no lease ran out: nothing is sent twice either.
      assert.equal(t.duplicates, 0, 'duplicates without any process dying');
    } finally {
      await stopFleet(fleet);
    }
  });

  test('3. SIGTERM of a worker under load (twice, restarted): nothing lost, no duplicates', { timeout: 90000 }, async () => {
    const fleet = await startFleet([{ role: 'api' }, { role: 'worker' }, { role: 'worker' }]);
    try {
      const [api, ...workers] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(api, 3);
      const subs = [];
      for (const name of ['a', 'b']) {
        const s = await sub(api, erp, `/term/${name}`, { maxConcurrency: 4 });
        subs.push(s);
        // Answers fast (well within the request timeout), but attempts are in flight at SIGTERM.
        rx.decide(s.path, () => ({ status: 200, delayMs: 40 }));
      }
      const started = Date.now();
      const stops = [];
      const stopper = (async () => {
        for (const [k, w] of workers.entries()) {
          await sleep(Math.max(0, 800 + k * 1800 + randomInt(0, 600) - (Date.now() - started)));
          const inFlight = inFlightAt(subs.map((s) => s.path));
          const t0 = Date.now();
          const r = await w.stop('SIGTERM');
          stops.push({ atMs: t0 - started, worker: k, receiverInFlight: inFlight, exitMs: Date.now() - t0, code: r.code });
          assert.equal(r.code, 0, `worker ${k} exit: ${JSON.stringify(r)}`);
          await w.start();
        }
      })();
      const pub = await publishMany({ apis: [api], tenant, targetIds, count: 240, concurrency: 4, pauseMs: 60, deadlineMs: 20000 });
      await stopper;
      const t = await settle(subs, pub.accepted.keys(), { timeoutMs: 30000 });
      console.log(`scenario 3: ${pub.accepted.size} events accepted in ${pub.ms} ms; stops ${JSON.stringify(stops)}; ${t.received} webhooks, drained ${t.drainMs} ms later, total ${Date.now() - started} ms`);
      console.log(`scenario 3: lost = ${t.lost}, duplicates = ${t.duplicates} ${JSON.stringify(t.perSub)}`);
      assert.ok(pub.accepted.size >= 120, `too few events accepted: ${pub.accepted.size} (${JSON.stringify(pub.refused)})`);
      assert.equal(t.lost, 0, 'accepted events lost');
      assert.equal(t.duplicates, 0, 'duplicates after SIGTERM');
    } finally {
      await stopFleet(fleet);
    }
  });

  test('4. rateLimitPerSecond and maxConcurrency: 1 hold across two workers, also while the work moves', { timeout: 90000 }, async () => {
    const fleet = await startFleet([{ role: 'api' }, { role: 'worker' }, { role: 'worker' }]);
    try {
      const [api, ...workers] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(api, 2);
      const RATE = 5;
      const rate = await sub(api, erp, '/limits/rate', { rateLimitPerSecond: RATE });
      const conc = await sub(api, erp, '/limits/conc', { maxConcurrency: 1 });
      rx.decide(conc.path, () => ({ status: 200, delayMs: 120 }));
      const N = 30;
      const started = Date.now();
      const ids = [];
      for (let n = 0; n < N; n++) ids.push(await publishOne(api, tenant, eventBody(targetIds[n % 2], n)));
      const pub = { accepted: new Map(ids.map((id, n) => [id, n])) };
      // Move the work: each worker in turn is stopped (SIGTERM: it hands back what it holds) and
      // started again, while the limited deliveries flow (30 at 5/s take ~6 s).
      const moves = [];
      for (const [k, w] of workers.entries()) {
        await sleep(1500);
        const r = await w.stop('SIGTERM');
        assert.equal(r.code, 0);
        moves.push({ worker: k, atMs: Date.now() - started, rateSoFar: rx.received(rate.path).length, concSoFar: rx.received(conc.path).length });
        await w.start();
      }
      const t = await settle([rate, conc], pub.accepted.keys(), { timeoutMs: 30000 });
      const arrivals = rx.received(rate.path).map((r) => r.arrivedAt);
      const worst = maxInWindow(arrivals);
      const span = Math.max(...arrivals) - Math.min(...arrivals);
      debugLogs(fleet);
      if (process.env.SCALEOUT_DEBUG) console.log('rate arrivals', JSON.stringify(arrivals.map((a) => a - started)));
      console.log(`scenario 4: moves ${JSON.stringify(moves)}; ${arrivals.length} webhooks at ${RATE}/s over ${span} ms, at most ${worst} in one 1-second window; maxConcurrency 1: at most ${rx.peakInFlight(conc.path)} at once; lost = ${t.lost}, duplicates = ${t.duplicates}`);
      const problems = [];
      if (t.lost) problems.push(`${t.lost} accepted events lost; warnings:\n${warnings(fleet)}`);
      if (worst > RATE + 1) problems.push(`${worst} webhooks within one second at rateLimitPerSecond ${RATE} (at most ${RATE + 1}); arrivals (ms): ${arrivals.map((a) => a - started).join(' ')}`);
      if (rx.peakInFlight(conc.path) > 1) problems.push(`${rx.peakInFlight(conc.path)} requests at once at maxConcurrency 1`);
      assert.deepEqual(problems, []);
    } finally {
      await stopFleet(fleet);
    }
  });

  test('5. ordered delivery across two workers: events published out of occurredAtUtc order arrive in it', { timeout: 90000 }, async () => {
    // Each target's earliest event (the gate) fails until everything is published, so that the
    // later ones are all accepted before any of them may go (an event accepted late with an
    // earlier occurredAtUtc than one already sent goes out at once: not what is measured here).
    const fleet = await startFleet([{ role: 'api' }, { role: 'worker' }, { role: 'worker' }], {
      retrySchedule: ['0s', ...Array(60).fill('200ms')].join(','),
    });
    try {
      const [api, ...workers] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(api, 3);
      const subs = [await sub(api, erp, '/ordered/a', { ordered: true }), await sub(api, erp, '/ordered/b', { ordered: true, maxConcurrency: 4 })];
      const gates = new Set();
      let open = false;
      for (const s of subs) {
        rx.decide(s.path, (body) => (!open && gates.has(body?.eventId) ? 500 : { status: 200, delayMs: 25 }));
      }
      const occurred = new Map(); // eventId -> { target, at }
      const base = Date.UTC(2026, 5, 25, 8, 0, 0);
      const publish = async (targetId, at) => {
        const id = await publishOne(api, tenant, eventBody(targetId, occurred.size, new Date(at).toISOString()));
        occurred.set(id, { targetId, at });
        return id;
      };
      for (const targetId of targetIds) gates.add(await publish(targetId, base));
      // 12 more per target, minutes apart, in a shuffled order of occurredAtUtc.
      const later = [];
      for (const targetId of targetIds) for (let i = 1; i <= 12; i++) later.push([targetId, base + i * 60000]);
      for (let i = later.length - 1; i > 0; i--) {
        const j = randomInt(0, i);
        [later[i], later[j]] = [later[j], later[i]];
      }
      for (const [targetId, at] of later) await publish(targetId, at);
      // Nothing but the gates may have arrived so far.
      for (const s of subs) {
        const early = rx.received(s.path).filter((r) => !gates.has(r.headers['webhook-id']));
        assert.equal(early.length, 0, `${s.path}: ${early.length} events went out before the earlier one of their target succeeded`);
      }
      open = true;
      const started = Date.now();
      // Half-way through, the work moves: each worker in turn is stopped and started again.
      for (const w of workers) {
        await sleep(400);
        const r = await w.stop('SIGTERM');
        assert.equal(r.code, 0);
        await w.start();
      }
      const t = await settle(subs, occurred.keys(), { timeoutMs: 30000 });
      assert.equal(t.lost, 0, 'accepted events lost');
      // The gates' failed attempts are repeated on purpose; nothing else is (SIGTERM hands back).
      const repeated = subs.flatMap((s) => rx.received(s.path).map((r) => `${s.path} ${r.headers['webhook-id']}`)).filter((k, i, all) => all.indexOf(k) !== i && !gates.has(k.split(' ')[1]));
      assert.deepEqual(repeated, [], 'duplicates besides the gates\' retries');
      for (const s of subs) {
        // The order of first arrivals per target must be the order of occurredAtUtc.
        const firsts = new Map();
        for (const r of rx.received(s.path)) {
          const id = r.headers['webhook-id'];
          const { targetId } = occurred.get(id);
          if (!firsts.has(targetId)) firsts.set(targetId, []);
          if (!firsts.get(targetId).includes(id)) firsts.get(targetId).push(id);
        }
        for (const [targetId, seq] of firsts) {
          const times = seq.map((id) => occurred.get(id).at);
          const sorted = [...times].sort((a, b) => a - b);
          assert.deepEqual(times, sorted, `${s.path}, target ${targetId}: arrivals out of occurredAtUtc order`);
        }
      }
      console.log(`scenario 5: ${occurred.size} events on ${targetIds.length} targets, ${subs.length} ordered subscriptions; ${t.received} webhooks (gate retries included), all in order; delivered ${Date.now() - started} ms after the gates opened; lost = ${t.lost}, duplicates besides the gates' retries = ${repeated.length}`);
    } finally {
      await stopFleet(fleet);
    }
  });

  test('6. a change through one process is in force in the others within 2 s (URL, disable, revoked key)', { timeout: 90000 }, async () => {
    // The change goes through the `api` process; the `all` process and the worker send and answer.
    const fleet = await startFleet([{ role: 'api' }, { role: 'all' }, { role: 'worker' }]);
    try {
      const [api, other] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(api, 2);
      const moved = await sub(api, erp, '/patch/before');
      const disabled = await sub(api, erp, '/patch/disabled');
      const accepted = [];
      let streaming = true;
      const stream = (async () => {
        for (let n = 0; streaming && n < 400; n++) {
          accepted.push({ id: await publishOne(other, tenant, eventBody(targetIds[n % 2], n)), at: Date.now() });
          await sleep(40);
        }
      })();
      await sleep(1500);
      let r = await api.call('PATCH', `/v1/subscriptions/${moved.id}`, { token: erp.key, body: { url: rx.url('/patch/after') } });
      assert.equal(r.status, 200, r.text);
      const movedAt = Date.now();
      r = await api.call('PATCH', `/v1/subscriptions/${disabled.id}`, { token: erp.key, body: { enabled: false } });
      assert.equal(r.status, 200, r.text);
      const disabledAt = Date.now();
      await sleep(3500);
      streaming = false;
      await stream;

      // Every event reached the moved subscription, at one URL or the other.
      const movedPaths = [{ ...moved, path: '/patch/before' }, { ...moved, path: '/patch/after' }];
      await eventually(() => {
        const got = new Set(movedPaths.flatMap((p) => rx.received(p.path).map((w) => w.headers['webhook-id'])));
        return accepted.every((e) => got.has(e.id));
      }, { timeoutMs: 20000, intervalMs: 100, what: 'every event at the moved subscription' });
      for (const p of [...movedPaths, disabled]) rx.verify(p.path, p.secret);
      // Outcomes recorded: every deliveryId received is in its subscription's delivery log (a
      // fixed 500 ms was once too short in a full ctest -j2 run).
      await eventually(async () => {
        for (const [paths, id] of [[['/patch/before', '/patch/after'], moved.id], [['/patch/disabled'], disabled.id]]) {
          const log = await attemptLog(api, erp.key, id);
          if (!paths.every((path) => rx.received(path).every((r) => log.has(JSON.parse(r.body).deliveryId)))) return false;
        }
        return true;
      }, { timeoutMs: 10000, intervalMs: 200, what: 'the outcomes of every webhook received in the delivery log' })
        .catch(() => {}); // the assertions below name what is missing


      // Attempts that started more than 2 s after the change's 2xx saw it (their start: the
      // delivery log's attemptedAtUtc of the request's deliveryId).
      const started = async (path, subscriptionId) => {
        const log = await attemptLog(api, erp.key, subscriptionId);
        return rx.verify(path, path === '/patch/disabled' ? disabled.secret : moved.secret).map((w) => {
          const row = log.get(w.payload.deliveryId);
          assert.ok(row, `${path}: deliveryId ${w.payload.deliveryId} not in the delivery log`);
          return Date.parse(row.attemptedAtUtc);
        });
      };
      const before = await started('/patch/before', moved.id);
      const after = await started('/patch/after', moved.id);
      const stale = before.filter((t) => t > movedAt + 2000);
      const lastOld = Math.max(...before) - movedAt;
      const firstNew = Math.min(...after) - movedAt;
      const afterDisabled = (await started('/patch/disabled', disabled.id)).filter((t) => t > disabledAt);
      const lateDisabled = afterDisabled.filter((t) => t > disabledAt + 2000);
      console.log(`scenario 6: URL change: last attempt at the old URL ${lastOld} ms after the PATCH's 2xx, first at the new one ${firstNew} ms; ${before.length} + ${after.length} webhooks`);
      console.log(`scenario 6: disable: ${afterDisabled.length} attempts started after the PATCH's 2xx, the last ${afterDisabled.length ? Math.max(...afterDisabled) - disabledAt : '-'} ms after it`);
      // Not vacuous: events kept coming for more than 2 s after each change.
      assert.ok(after.some((t) => t > movedAt + 2000), 'no attempt at all more than 2 s after the URL change');
      assert.ok(accepted.some((e) => e.at > disabledAt + 2000), 'no event published more than 2 s after the disabling');
      assert.equal(stale.length, 0, `${stale.length} attempts to the old URL started more than 2 s after the PATCH (the last ${lastOld} ms after)`);
      assert.equal(lateDisabled.length, 0, `${lateDisabled.length} attempts of the disabled subscription started more than 2 s after the PATCH`);
      const view = await api.call('GET', `/v1/subscriptions/${disabled.id}`, { token: erp.key });
      assert.equal(view.body.enabled, false);

      // A client key revoked through one process is refused by the other 2 s later.
      const k = await api.call('POST', `/v1/clients/${erp.clientId}/keys`, { token: tenant.key });
      assert.equal(k.status, 201, k.text);
      r = await other.call('GET', '/v1/subscriptions', { token: k.body.apiKey });
      assert.equal(r.status, 200, r.text); // now known (and perhaps cached) by the other process
      r = await api.call('DELETE', `/v1/keys/${k.body.keyId}`, { token: tenant.key });
      assert.equal(r.status, 204, r.text);
      const revokedAt = Date.now();
      let firstRefusal;
      for (let i = 0; i < 30; i++) {
        const at = Date.now();
        r = await other.call('GET', '/v1/subscriptions', { token: k.body.apiKey });
        if (r.status === 401) {
          firstRefusal ??= at - revokedAt;
        } else {
          assert.equal(r.status, 200, r.text);
          assert.ok(at - revokedAt <= 2000, `the revoked key still worked ${at - revokedAt} ms after the DELETE's 204`);
        }
        if (at - revokedAt > 2500) break;
        await sleep(100);
      }
      console.log(`scenario 6: revoked key: first refused ${firstRefusal} ms after the DELETE's 204`);
      assert.ok(firstRefusal !== undefined, 'the revoked key was never refused');
    } finally {
      await stopFleet(fleet);
    }
  });

  test('7. the same Idempotency-Key sent to two processes at once: one event, one webhook', { timeout: 90000 }, async () => {
    const fleet = await startFleet([{ role: 'api' }, { role: 'api' }, { role: 'worker' }]);
    try {
      const [a, b] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(a, 1);
      const s = await sub(a, erp, '/idem');
      const ROUNDS = 12;
      const ids = new Set();
      for (let i = 0; i < ROUNDS; i++) {
        const key = `scaleout-idem-${i}-${Date.now()}`;
        const body = eventBody(targetIds[0], i);
        const answers = await Promise.all([a, b].map((ob) => publishOne(ob, tenant, body, { 'idempotency-key': key })));
        assert.equal(answers[0], answers[1], `round ${i}: two eventIds for one Idempotency-Key`);
        ids.add(answers[0]);
      }
      assert.equal(ids.size, ROUNDS);
      const t = await settle([s], ids, { timeoutMs: 20000 });
      await sleep(1000); // a second event, if any, would arrive meanwhile
      const received = rx.verify(s.path, s.secret);
      console.log(`scenario 7: ${ROUNDS} keys each sent to both api processes at once: ${ids.size} events, ${received.length} webhooks`);
      assert.equal(t.lost, 0);
      assert.equal(received.length, ROUNDS, 'one webhook per Idempotency-Key');
      assert.deepEqual(new Set(received.map((w) => w.payload.eventId)), ids);
    } finally {
      await stopFleet(fleet);
    }
  });

  describe('8. the database stopped and started under load', () => {
    const cluster = new PgCluster();
    let fleet;
    before(async () => {
      await cluster.start();
      fleet = await startFleet([{ role: 'api' }, { role: 'worker' }], { pgServer: cluster.dsn });
    });
    after(async () => {
      if (fleet) await stopFleet(fleet);
      await cluster.destroy();
    });

    test('503 store_unavailable and /readyz 503 while it is down, /healthz 200; everything accepted is delivered', { timeout: 90000 }, async () => {
      const [api, worker] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(api, 2);
      const subs = [await sub(api, erp, '/pgdown/a', { maxConcurrency: 4 }), await sub(api, erp, '/pgdown/b', { maxConcurrency: 4 })];
      for (const s of subs) rx.decide(s.path, () => ({ status: 200, delayMs: 20 }));
      const started = Date.now();
      const load = publishMany({ apis: [api], tenant, targetIds, count: 100000, concurrency: 3, pauseMs: 40, deadlineMs: 14000 });
      await sleep(2000);
      const beforeStop = rx.received(subs[0].path).length;
      await cluster.pause();
      const stoppedAt = Date.now() - started;
      const during = { publish: [], readyz: [], healthz: [], workerReadyz: [], workerHealthz: [] };
      for (let i = 0; i < 12; i++) {
        const r = await api.call('POST', '/v1/events', { token: tenant.key, body: eventBody(targetIds[0], 9000 + i) });
        during.publish.push({ status: r.status, code: r.body?.error?.code, retryAfter: r.headers.get('retry-after') });
        during.readyz.push((await api.call('GET', '/readyz')).status);
        during.healthz.push((await api.call('GET', '/healthz')).status);
        during.workerReadyz.push((await worker.call('GET', '/readyz')).status);
        during.workerHealthz.push((await worker.call('GET', '/healthz')).status);
        await sleep(200);
      }
      await cluster.resume();
      const resumedAt = Date.now() - started;
      await eventually(async () => (await api.call('GET', '/readyz')).status === 200 && (await worker.call('GET', '/readyz')).status === 200, { timeoutMs: 20000, intervalMs: 200, what: '/readyz 200 again' });
      const readyAgainMs = Date.now() - started - resumedAt;
      const pub = await load;
      const t = await settle(subs, pub.accepted.keys(), { timeoutMs: 40000 });
      const summary = (list) => JSON.stringify([...list.reduce((m, x) => m.set(JSON.stringify(x), (m.get(JSON.stringify(x)) || 0) + 1), new Map())]);
      console.log(`scenario 8: stopped at ${stoppedAt} ms (${beforeStop} webhooks on /pgdown/a before), started again at ${resumedAt} ms, both /readyz 200 ${readyAgainMs} ms later`);
      console.log(`scenario 8: while down: publish ${summary(during.publish)}, api readyz ${summary(during.readyz)}, api healthz ${summary(during.healthz)}, worker readyz ${summary(during.workerReadyz)}, worker healthz ${summary(during.workerHealthz)}`);
      console.log(`scenario 8: ${pub.accepted.size} accepted of ${pub.published} (refused ${JSON.stringify(pub.refused)}); ${t.received} webhooks; lost = ${t.lost}, duplicates = ${t.duplicates}; drained ${t.drainMs} ms after publishing stopped`);
      for (const p of during.publish) {
        assert.equal(p.status, 503, `publish while the database is down: ${JSON.stringify(p)}`);
        assert.ok(p.retryAfter, `503 without Retry-After: ${JSON.stringify(p)}`);
      }
      // The first answers may come from a connection that has not noticed yet; after a second
      // the store is known unavailable.
      assert.ok(during.publish.slice(5).every((p) => p.code === 'store_unavailable'), summary(during.publish));
      assert.ok(during.readyz.every((s) => s === 503), `api /readyz while down: ${during.readyz}`);
      assert.ok(during.workerReadyz.every((s) => s === 503), `worker /readyz while down: ${during.workerReadyz}`);
      assert.ok(during.healthz.every((s) => s === 200), `api /healthz while down: ${during.healthz}`);
      assert.ok(during.workerHealthz.every((s) => s === 200), `worker /healthz while down: ${during.workerHealthz}`);
      assert.ok(api.running && worker.running, 'a process died with the database');
      assert.ok(pub.accepted.size >= 50, `too few events accepted: ${pub.accepted.size}`);
      assert.equal(t.lost, 0, 'accepted events lost');
    });
  });

  test('9. a worker started onto a backlog sends all of it (eight rounds)', { timeout: 90000 }, async () => {
    // The first claim of a fresh process and its first lease renewal run side by side; whatever
    // that claim took must be sent (not dropped while it stays leased to the live process).
    const fleet = await startFleet([{ role: 'api' }, { role: 'worker' }]);
    try {
      const [api, worker] = fleet;
      const { tenant, erp, targetIds } = await seedTargets(api, 2);
      const s = await sub(api, erp, '/backlog');
      const accepted = [];
      const rounds = [];
      for (let round = 0; round < 8; round++) {
        const { code } = await worker.stop('SIGTERM'); // hands back everything it holds
        assert.equal(code, 0);
        for (let n = 0; n < 100; n++) accepted.push(await publishOne(api, tenant, eventBody(targetIds[n % 2], n)));
        const t0 = Date.now();
        await worker.start();
        const t = await settle([s], accepted, { timeoutMs: 8000 });
        rounds.push({ round, lost: t.lost, ms: Date.now() - t0 });
        if (t.lost) break;
      }
      console.log(`scenario 9: ${JSON.stringify(rounds)}`);
      assert.ok(rounds.every((r) => r.lost === 0), `deliveries left unsent by a worker that started onto them: ${JSON.stringify(rounds)}; its warnings:\n${warnings(fleet)}`);
    } finally {
      await stopFleet(fleet);
    }
  });
});
