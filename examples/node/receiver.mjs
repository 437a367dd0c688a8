// A webhook receiver for Outbound in Node.js: verify, de-duplicate, answer at once, work later.
//
//   WEBHOOK_SECRET=whsec_... PORT=3000 node receiver.mjs
//
// - Verifies every request with the public `standardwebhooks` library (signature over
//   id.timestamp.body, timestamp within 5 minutes). A request that fails is answered 401 and
//   never processed.
// - De-duplicates by eventId (the `webhook-id` header): delivery is at least once, so the same
//   event can arrive again (a retry after a lost answer, a redeliver, a recover). Here an
//   in-memory set kept for 24 hours; in production, a unique key in the database your handler
//   writes to, checked in the same transaction.
// - Answers 204 as soon as the webhook is verified and recorded, and does the work afterwards:
//   Outbound waits at most 15 s for an answer and retries what it does not get.
// Prints one JSON line per request (for the example's test and for you to watch).
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error('set WEBHOOK_SECRET to the subscription secret (whsec_...)');
  process.exit(2);
}
const wh = new Webhook(secret);
const seen = new Map(); // eventId -> first seen (ms)
const DAY = 24 * 3600 * 1000;
const queue = [];

function log(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// Your work goes here: it runs after the answer was sent.
async function handle(event) {
  log({ processed: event.eventId, eventType: event.eventType, deliveryId: event.deliveryId });
}

async function drain() {
  while (queue.length) {
    const event = queue.shift();
    try {
      await handle(event);
    } catch (err) {
      // The webhook was already acknowledged: a failure here is yours to retry (or use
      // `POST /v1/events/{eventId}/redeliver` to have Outbound send it again).
      log({ failed: event.eventId, error: String(err) });
    }
  }
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(405).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 1024 * 1024) req.destroy(); // far above any Outbound payload
    else chunks.push(c);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    let event;
    try {
      event = wh.verify(body, req.headers); // throws on a bad signature or an old timestamp
    } catch (err) {
      log({ refused: req.headers['webhook-id'] ?? null, reason: err.message });
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_signature"}');
      return;
    }
    const now = Date.now();
    for (const [id, at] of seen) {
      if (now - at < DAY) break; // Map keeps insertion order: the oldest come first
      seen.delete(id);
    }
    if (seen.has(event.eventId)) {
      log({ duplicate: event.eventId, deliveryId: event.deliveryId });
    } else {
      seen.set(event.eventId, now);
      queue.push(event);
      setImmediate(drain);
    }
    res.writeHead(204).end();
  });
});

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address();
  log({ listening: `http://${address}:${port}/` });
});
