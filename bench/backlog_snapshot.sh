#!/bin/bash
# The database of a SQLite backlog run as it is right after the fill (issue 8, bytes per waiting
# delivery): e2e_bench --backlog prints database + WAL after the fill, but keeps (--keep-logs)
# only the database after the drain. This runs the bench, polls the database until the fill's
# deliveries are all dead, stops the server (SIGSTOP) for a copy of the database and its WAL,
# lets it go on, then prints dbstat per table and index of the copy (B per waiting delivery).
# usage: bench/backlog_snapshot.sh OUTDIR [WAITING]   (from the repository root, after a build)
set -u
out=$1
n=${2:-100000}
rm -rf "$out"
mkdir -p "$out"
timeout 1800 build/bench/e2e_bench --bin build/outbound --backlog --backlog-waiting "$n" \
  --baseline 20000 --keep-logs --tmp "$out" >"$out/bench.log" 2>&1 &
bench=$!
db=""
for _ in $(seq 1 3000); do
  db=$(ls "$out"/outbound-bench-backlog-*/outbound.db 2>/dev/null | head -1)
  [ -n "$db" ] && break
  sleep 0.2
done
[ -n "$db" ] || { echo "no backlog database appeared"; wait $bench; exit 1; }
dead=0
while kill -0 $bench 2>/dev/null; do
  dead=$(sqlite3 "file:$db?mode=ro" "SELECT COUNT(*) FROM deliveries WHERE status = 'dead' AND status <> 'succeeded'" \
    2>/dev/null)
  [ "${dead:-0}" -ge "$n" ] && break
  sleep 0.3
done
sleep 0.8  # the bench waits 2 s after the fill before its recover calls
pid=""
for p in $(pgrep -x outbound); do
  tr '\0' ' ' </proc/"$p"/cmdline | grep -q "$(dirname "$db")" && pid=$p
done
[ -n "$pid" ] || { echo "the server was not found"; wait $bench; exit 1; }
kill -STOP "$pid"
mkdir -p "$out/snap"
cp "$db" "$out/snap/outbound.db"
[ -f "$db-wal" ] && cp "$db-wal" "$out/snap/outbound.db-wal"
kill -CONT "$pid"
wait $bench
echo "bench exit status $? (its output: $out/bench.log); $dead dead when copied"
grep -E "fill done|disk per waiting" "$out/bench.log"
sqlite3 "$out/snap/outbound.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
sqlite3 -header -column "$out/snap/outbound.db" \
  "SELECT name, SUM(pgsize) AS bytes, ROUND(SUM(pgsize) * 1.0 / $n, 1) AS per_waiting,
     ROUND(100.0 * SUM(unused) / SUM(pgsize), 1) AS unused_pct
   FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 14;
   SELECT ROUND(page_count * page_size * 1.0 / $n, 1) AS database_per_waiting
   FROM pragma_page_count, pragma_page_size;"
