#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the tests (the CTest fixture `pg`, tests/CMakeLists.txt).
#   pg-test-cluster.sh start DIR  initdb in DIR, start on a free port of 127.0.0.1 (trust auth,
#                                 superuser role `outbound`), write its URL to DIR/dsn
#   pg-test-cluster.sh stop DIR   stop it (immediate) and remove DIR; also after a failed start
# With OUTBOUND_TEST_PG_DSN set, start writes that URL to DIR/dsn and starts nothing.
# PostgreSQL refuses to run as root: as root, the cluster belongs to the system user outbound-pg
# (created if missing). If that user cannot reach DIR, or DIR is too long for a Unix socket path
# (107 bytes), the cluster lives in /tmp/outbound-pg.XXXXXX instead; DIR/home names it.
set -euo pipefail

die() {
  echo "pg-test-cluster: $*" >&2
  exit 1
}
if (($# != 2)) || [[ $1 != start && $1 != stop ]]; then die "usage: $0 start|stop DIR"; fi
dir=$(realpath -m -- "$2")
[[ $dir != / ]] || die "refusing DIR=/"
bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
pg_user=outbound-pg

# Runs a command as USER: directly when that is who we are, through runuser when root.
run_as() {
  local user=$1
  shift
  if ((EUID == 0)) && [[ $user != root ]]; then
    (cd / && runuser -u "$user" -- "$@")
  else
    "$@"
  fi
}

# A port of 127.0.0.1 where nothing listens now (below Linux's ephemeral range, 32768+). Another
# process may take it before the server binds it: start() then retries with another port.
free_port() {
  local p
  for _ in {1..100}; do
    p=$((10000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

stop_cluster() {
  local home=$dir
  [[ -f $dir/home ]] && home=$(<"$dir/home")
  if [[ $home != "$dir" && $home != /tmp/outbound-pg.* ]]; then
    echo "pg-test-cluster: ignoring unexpected cluster home '$home'" >&2
    home=$dir
  fi
  if [[ -f $home/data/postmaster.pid ]]; then
    # A server that survives this shuts itself down within a minute of losing its data directory.
    run_as "$(stat -c %U "$home/data")" "$bindir/pg_ctl" stop -D "$home/data" -m immediate -w \
      >/dev/null || echo "pg-test-cluster: pg_ctl stop failed (continuing)" >&2
  fi
  [[ $home == "$dir" ]] || rm -rf -- "$home"
  rm -rf -- "$dir"
}

start_cluster() {
  stop_cluster # what an earlier run may have left
  mkdir -p "$dir"
  if [[ -n ${OUTBOUND_TEST_PG_DSN:-} ]]; then
    printf '%s\n' "$OUTBOUND_TEST_PG_DSN" >"$dir/dsn"
    echo "pg-test-cluster: using OUTBOUND_TEST_PG_DSN, nothing started"
    return 0
  fi
  [[ -x $bindir/initdb ]] || die "no $bindir/initdb: install postgresql-15 (scripts/setup.sh does)"

  local owner home=$dir port=
  owner=$(id -un)
  if ((EUID == 0)); then
    owner=$pg_user
    id -u "$owner" >/dev/null 2>&1 ||
      useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$owner" || id -u "$owner" >/dev/null # lost a race: fine
    chown "$owner:" "$dir"
  fi
  if ((${#dir} + 15 > 107)) || ! run_as "$owner" test -w "$dir" -a -x "$dir"; then
    home=$(mktemp -d /tmp/outbound-pg.XXXXXX)
    chmod 755 "$home"
    chown "$owner:" "$home"
  fi
  printf '%s\n' "$home" >"$dir/home"

  # --no-sync: initdb does not flush the files it writes (a throwaway cluster); the server does.
  run_as "$owner" "$bindir/initdb" -D "$home/data" -U outbound --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
    die "initdb failed: $(cat "$dir/initdb.log")"
  # No passwords: only 127.0.0.1 and the socket in the cluster's own directory.
  printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' >"$home/data/pg_hba.conf"
  printf "%s\n" "listen_addresses = '127.0.0.1'" \
    "unix_socket_directories = '${home//\'/\'\'}'" \
    "fsync = on # kept on: the tests measure durability" >>"$home/data/postgresql.conf"

  for _ in 1 2 3 4 5; do
    port=$(free_port) || die "no free port on 127.0.0.1"
    rm -f "$home/server.log"
    if run_as "$owner" "$bindir/pg_ctl" start -D "$home/data" -l "$home/server.log" -o "-p $port" \
      -w -t 60 >/dev/null; then
      break
    fi
    grep -q 'could not bind' "$home/server.log" 2>/dev/null ||
      die "the server did not start: $(cat "$home/server.log" 2>/dev/null)"
    echo "pg-test-cluster: port $port was taken meanwhile, trying another" >&2
    port=
  done
  [[ -n $port ]] || die "no port could be bound"

  local dsn="postgres://outbound@127.0.0.1:$port/postgres"
  "$bindir/psql" "$dsn" -X -q -v ON_ERROR_STOP=1 -c 'select 1' >/dev/null ||
    die "the server started but $dsn does not answer"
  printf '%s\n' "$dsn" >"$dir/dsn"
  echo "pg-test-cluster: $dsn (data in $home/data)"
}

if [[ $1 == start ]]; then start_cluster; else stop_cluster; fi
