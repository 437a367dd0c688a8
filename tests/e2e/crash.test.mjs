// Crash safety (CONTRACT.md §6 "at least once"): under load, the server is killed with SIGKILL
// at random moments and restarted on the same database; every event the API accepted (202) must
// still reach every subscription. Duplicates are allowed only for attempts in flight at a kill
// (sending, or answered and not yet recorded), and bounded accordingly (as scaleout.test.mjs
// scenario 1 does). Bounded: a fixed number of events and kills, and a deadline for the drain.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Outbound,
  Receiver,
  dbKind,
  eventually,
  receivedAt,
  repeatsExplainedByKills,
  seedTargets,
  sleep,
} from './harness.mjs';

const EVENTS = 450; // events published in all
const WORKERS = 6; // concurrent POST /v1/events
const KILLS = 3;
const PUBLISH_MS = 40000; // publishing stops here even if fewer events went out (slow disks)
const CAP = 8; // maxConcurrency of each subscription: at most this many of its attempts in flight
// An attempt is in flight from its start until its outcome is committed, which comes a little
// after the receiver's answer (outcomes are recorded in batches): a webhook answered at most
// this long before a kill may be sent again after the restart.
const IN_FLIGHT_MS = 1000;
// The receiver runs in this process: a request the server wrote just before it died may be
// recorded a moment after the test saw the exit (one turn of a busy event loop).
const LAG_MS = 250;

// A longer schedule than the harness default, so that a delivery whose attempts straddle a
// restart is not declared dead by a refused connection: the receiver never fails here. On
// PostgreSQL (e2e_pg.crash) the restarted process is a new lease owner: what the killed one had
// claimed comes back when its lease runs out, so the lease is short (default 30 s).
const ob = new Outbound({
  retrySchedule: '0s,200ms,500ms,1s,1s,2s,2s,2s,2s,2s',
  args: dbKind === 'postgres' ? ['--lease', '2s'] : [],
});
const rx = new Receiver();
let tenant, erp;
const subs = [];
const targets = [];

before(async () => {
  await rx.start();
  await ob.start();
  const seeded = await seedTargets(ob, 2);
  ({ tenant, erp } = seeded);
  targets.push(...seeded.targetIds);
  // Three subscriptions, created after the import so that only published events count.
  for (const name of ['a', 'b', 'c']) {
    const s = await ob.call('POST', '/v1/subscriptions', {
      token: erp.key,
      body: { url: rx.url(`/${name}`), eventTypes: ['appointment.*'], maxConcurrency: CAP },
    });
    assert.equal(s.status, 201, s.text);
    subs.push({ id: s.body.subscriptionId, secret: s.body.secret, path: `/${name}` });
  }
});

after(async () => {
  await ob.cleanup();
  await rx.stop();
});

test('SIGKILL under load, three times: no accepted event is lost for any subscription; duplicates only for attempts in flight', { timeout: 90000 }, async () => {
  const started = Date.now();
  const accepted = new Set(); // eventIds answered 202
  let unanswered = 0; // requests killed mid-flight or refused while the server was down
  let next = 0; // next event number to publish
  let up = true; // the server is accepting
  let upAgain = Promise.resolve();
  const kills = []; // { at, exitedAt }: when each SIGKILL was sent, and the exit seen

  async function worker() {
    while (next < EVENTS && Date.now() - started < PUBLISH_MS) {
      if (!up) {
        await upAgain;
        continue;
      }
      const n = next++;
      const body = {
        eventType: 'appointment.started',
        targetId: targets[n % targets.length],
        occurredAtUtc: new Date(Date.UTC(2026, 5, 25, 14, 0, 0) + n * 1000).toISOString(),
        data: { appointmentId: n + 1, startedAtUtc: '2026-06-25T14:02:00Z' },
      };
      try {
        const r = await ob.call('POST', '/v1/events', { token: tenant.key, body });
        if (r.status === 202) accepted.add(r.body.eventId);
        else if (r.status === 503) await sleep(50); // backpressure: allowed, not accepted
        else assert.fail(`publish answered ${r.status} ${r.text}`);
      } catch (e) {
        if (e.code === 'ERR_ASSERTION') throw e;
        // The server died under this request (or was already down): its fate is unknown, so
        // it is not counted as accepted.
        unanswered++;
        await sleep(20);
      }
    }
  }

  async function killer() {
    for (let k = 0; k < KILLS; k++) {
      // A random moment while events flow (and deliveries are in flight).
      await sleep(300 + Math.floor(Math.random() * 2700));
      up = false;
      let release;
      upAgain = new Promise((r) => (release = r));
      const at = Date.now();
      const r = await ob.stop('SIGKILL');
      kills.push({ at, exitedAt: Date.now() });
      assert.equal(r.signal, 'SIGKILL');
      await sleep(Math.floor(Math.random() * 200));
      await ob.start(); // same directory, same database
      up = true;
      release();
    }
  }

  await Promise.all([killer(), ...Array.from({ length: WORKERS }, worker)]);
  const publishedMs = Date.now() - started;
  assert.ok(accepted.size >= 100, `too few events accepted: ${accepted.size}`);

  // Every accepted event reaches every subscription (bounded wait).
  const missing = () => {
    let lost = 0;
    for (const s of subs) {
      const got = new Set(rx.received(s.path).map((r) => r.headers['webhook-id']));
      for (const id of accepted) if (!got.has(id)) lost++;
    }
    return lost;
  };
  await eventually(() => missing() === 0, {
    timeoutMs: Math.max(5000, 80000 - (Date.now() - started)),
    intervalMs: 200,
    what: 'every accepted event at every subscription',
  }).catch(() => {});
  const lost = missing();

  // Signatures of everything received; duplicates per (eventId, subscription).
  let duplicates = 0;
  let received = 0;
  for (const s of subs) {
    const at = receivedAt(rx, s); // throws on any bad signature or a deliveryId used twice
    received += at.received;
    duplicates += at.duplicates;
  }
  console.log(
    `crash test: ${next} published, ${accepted.size} accepted, ${unanswered} unanswered (killed ` +
      `mid-request or refused while down), ${KILLS} kills; ${received} webhooks received for ` +
      `${subs.length} subscriptions; publishing took ${publishedMs} ms, total ${Date.now() - started} ms`,
  );
  // Duplicates only for attempts in flight at a kill (CONTRACT §6, §12): every repeat of a webhook
  // must follow a kill that came at most IN_FLIGHT_MS after the copy before it (or that copy was
  // still on its way when the process died: recorded by LAG_MS after the exit); and per kill, at
  // most what was sending (Σ maxConcurrency) plus what had been answered in the IN_FLIGHT_MS
  // before it (answered, outcome not yet committed).
  const { unexplained, worstLag, perKill, bound } = repeatsExplainedByKills(rx, subs, kills, {
    inFlightMs: IN_FLIGHT_MS,
    lagMs: LAG_MS,
    cap: subs.length * CAP,
    started,
  });
  console.log(`lost = ${lost}`);
  console.log(`duplicates = ${duplicates} (bound ${bound}: per kill Σ maxConcurrency ${subs.length * CAP} + answered in the ${IN_FLIGHT_MS} ms before it: ${perKill.join(', ')}); the earliest repeated copy came ${worstLag} ms before its kill`);
  const warnings = ob.log.split('\n').filter((l) => / (warning|error|critical) /.test(l) && !/dropped 0 queued/.test(l));
  assert.equal(lost, 0, `accepted events lost; the server's warnings:\n${warnings.slice(0, 10).join('\n') || '(none)'}`);
  assert.deepEqual(unexplained.slice(0, 10), [], `${unexplained.length} webhooks repeated without a kill while they were in flight`);
  assert.ok(duplicates <= bound, `${duplicates} duplicates > ${bound}`);
});
