#!/usr/bin/python3
"""A calm scale-out's webhook latency: one `api` and two `worker` processes on PostgreSQL.

usage: bench/scaleout_latency.py BIN DSN [EVENTS [RATE]]
  BIN     the outbound binary (./build/outbound)
  DSN     a PostgreSQL server's URL whose role may create databases (scripts/pg-test-cluster.sh
          start DIR writes one to DIR/dsn); the script makes a database of its own and drops it
  EVENTS  appointment.started events to publish (200), one at a time, at RATE per second (20)

Prints publish sent -> webhook received (p50, p90, p99, max) at a receiver on 127.0.0.1. The
`api` process takes the publish and leaves the delivery due; a worker claims and sends it. Without
the api's announcement (NOTIFY outbound_due) a worker found it at its next poll, every 200 ms
when idle: about 100 ms at the median. docs/PERFORMANCE.md has the figures, and e2e_bench
--backlog --stores pg3 the same layout under load. Loopback only; bounded in count and time
(each request 10 s at most). Standard library only.
"""
import base64
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

OPERATOR_TOKEN = "optok-scaleout-latency-0123456789"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, dsn = sys.argv[1], sys.argv[2]
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
    if not 1 <= events <= 10000 or not 0.1 <= rate <= 1000:
        sys.exit("EVENTS 1-10000, RATE 0.1-1000")
    db = "scaleout_latency_%d" % os.getpid()
    subprocess.run(["psql", dsn, "-qc", "CREATE DATABASE %s" % db], check=True)
    db_dsn = dsn.rsplit("/", 1)[0] + "/" + db
    procs = []
    try:
        run(binary, db_dsn, events, rate, procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        subprocess.run(["psql", dsn, "-qc", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db])


def run(binary, dsn, events, rate, procs):
    arrived = {}

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            at = time.monotonic()
            try:
                arrived[json.loads(body)["eventId"]] = at
            except (ValueError, KeyError):
                pass
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class ReceiverServer(http.server.ThreadingHTTPServer):
        daemon_threads = True
        # socketserver's default backlog is 5: a burst of new connections past it loses SYNs,
        # which come back after 1 s (the kernel's first retransmission), a false 1 s tail.
        request_queue_size = 128

    rx = ReceiverServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=rx.serve_forever, daemon=True).start()

    key = base64.b64encode(secrets.token_bytes(32)).decode()
    ports = []
    for role in ["api", "worker", "worker"]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        procs.append(subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:%d" % ports[-1], "--db", dsn,
             "--operator-token", OPERATOR_TOKEN, "--allow-private-networks", "--role", role,
             "--secrets-key", key], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_healthy(ports[-1])
    api = "http://127.0.0.1:%d" % ports[0]

    def call(method, path, token, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(api + path, method=method, data=data, headers={
            "Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            sys.exit("%s %s: HTTP %d %s" % (method, path, e.code, e.read()[:300]))

    tenant_key = call("POST", "/v1/tenants", OPERATOR_TOKEN, {"name": "Scale-out"})["apiKey"]
    client = call("POST", "/v1/clients", tenant_key, {"name": "ERP", "sourceSystem": "erp"})
    client_key = call("POST", "/v1/clients/%s/keys" % client["clientId"], tenant_key)["apiKey"]
    call("PUT", "/v1/customers/12", tenant_key,
         {"customerNumber": "C1", "name": "Customer", "externalIds": {"erp": "C-1"}})
    imported = call("POST", "/v1/imports/targets", client_key, {"targets": [
        {"externalId": "T-1", "customerExternalId": "C-1", "title": "t", "durationMinutes": 5}]})
    target = imported["results"][0]["targetId"]
    call("POST", "/v1/subscriptions", client_key, {
        "url": "http://127.0.0.1:%d/s0" % rx.server_address[1], "eventTypes": ["appointment.*"]})
    time.sleep(3.0)  # the workers take the new subscription in (their configuration poll: 2 s)

    sent = {}
    for i in range(events):
        start = time.monotonic()
        event = call("POST", "/v1/events", tenant_key, {
            "eventType": "appointment.started", "targetId": target,
            "occurredAtUtc": "2026-06-25T14:31:00Z",
            "data": {"appointmentId": i + 1, "startedAtUtc": "2026-06-25T14:30:00Z"}})
        sent[event["eventId"]] = start
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - start)))
    deadline = time.monotonic() + 10
    while len(arrived) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    late = sorted((arrived[e] - t) * 1000 for e, t in sent.items() if e in arrived)
    missing = len(sent) - len(late)
    if not late:
        sys.exit("no webhook arrived")

    def q(p):
        return late[min(len(late) - 1, int(p * len(late)))]

    print("%s, 1 api + 2 worker: %d events at %g/s, publish sent -> received: p50 %.1f ms, "
          "p90 %.1f, p99 %.1f, max %.1f; %d missing" % (
              os.path.basename(binary), events, rate, q(0.5), q(0.9), q(0.99), late[-1], missing))


def wait_healthy(port):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("outbound on port %d did not answer /healthz within 30 s" % port)


if __name__ == "__main__":
    main()
