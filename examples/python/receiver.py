#!/usr/bin/env python3
"""A webhook receiver for Outbound in Python, standard library only.

    WEBHOOK_SECRET=whsec_... PORT=3000 python3 receiver.py

- Verifies every request as the Standard Webhooks specification says: HMAC-SHA256 with the
  base64-decoded part of the secret after "whsec_", over "webhook-id.webhook-timestamp.body",
  compared in constant time with each "v1,<base64>" of webhook-signature (two are sent while a
  rotated secret is still valid); the timestamp must be within 5 minutes of now. A request that
  fails is answered 401 and never processed.
- De-duplicates by eventId (the webhook-id header): delivery is at least once, so the same event
  can arrive again. Here an in-memory dict kept 24 hours; in production a unique key in your
  database, checked in the same transaction as the work.
- Answers 204 as soon as the webhook is verified and recorded; a worker thread does the work, so
  a slow handler never makes Outbound time out and retry.
Prints one JSON line per request.
"""
import base64
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60
DAY_SECONDS = 24 * 3600
MAX_BODY = 1024 * 1024  # far above any Outbound payload


def decode_secret(secret):
    if not secret.startswith("whsec_"):
        raise ValueError("the secret starts with whsec_")
    return base64.b64decode(secret[len("whsec_"):])


def verify(key, headers, body):
    """Returns None when the request is genuine, else the reason it is not."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        ts = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not Unix seconds"
    if abs(time.time() - ts) > TOLERANCE_SECONDS:
        return "webhook-timestamp is too far from now"
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for sig in signatures.split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return None
    return "no v1 signature matches"


def log(obj):
    with log.lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


log.lock = threading.Lock()


def handle(event):
    """Your work goes here: it runs after the answer was sent."""
    log({"processed": event["eventId"], "eventType": event["eventType"],
         "deliveryId": event["deliveryId"]})


def worker(jobs):
    while True:
        event = jobs.get()
        try:
            handle(event)
        except Exception as err:  # acknowledged already: retry it yourself, or redeliver
            log({"failed": event.get("eventId"), "error": str(err)})


class Receiver(BaseHTTPRequestHandler):
    key = b""
    seen = {}  # eventId -> first seen (monotonic seconds)
    seen_lock = threading.Lock()
    jobs = queue.Queue()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.send_response(413)
            self.end_headers()
            return
        body = self.rfile.read(length)
        reason = verify(self.key, self.headers, body)
        if reason is not None:
            log({"refused": self.headers.get("webhook-id"), "reason": reason})
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error":"invalid_signature"}')
            return
        event = json.loads(body)
        now = time.monotonic()
        with self.seen_lock:
            for old in [k for k, at in self.seen.items() if now - at > DAY_SECONDS]:
                del self.seen[old]
            duplicate = event["eventId"] in self.seen
            if not duplicate:
                self.seen[event["eventId"]] = now
        if duplicate:
            log({"duplicate": event["eventId"], "deliveryId": event["deliveryId"]})
        else:
            self.jobs.put(event)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):  # one JSON line per request is enough
        pass


def main():
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        sys.exit("set WEBHOOK_SECRET to the subscription secret (whsec_...)")
    Receiver.key = decode_secret(secret)
    threading.Thread(target=worker, args=(Receiver.jobs,), daemon=True).start()
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"),
                                  int(os.environ.get("PORT", "3000"))), Receiver)
    host, port = server.server_address[:2]
    log({"listening": f"http://{host}:{port}/"})
    server.serve_forever()


if __name__ == "__main__":
    main()
