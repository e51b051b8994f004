#!/usr/bin/env bash
# Start PostgreSQL and Redis on loopback when they are down (Debian packages), and make sure db `test` exists
# with trust auth for 127.0.0.1. Sourced by infra/test.sh.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    as_root apt-get install -y -qq postgresql >/dev/null 2>&1 || { as_root apt-get update -qq >/dev/null; as_root apt-get install -y -qq postgresql >/dev/null; }
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort | tail -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null 2>&1; then
  hba="$(ls /etc/postgresql/*/main/pg_hba.conf | sort | tail -1)"
  if ! as_root grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
    # tests create and drop their own databases, so trust covers all of them on loopback only
    as_root sed -i '0,/^host/s//host all all 127.0.0.1\/32 trust\nhost/' "$hba"
  fi
  as_root su postgres -c "createdb test" 2>/dev/null || true
  as_root su postgres -c "psql -c 'select pg_reload_conf()'" >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || as_root apt-get install -y -qq redis-server >/dev/null
  # With the append-only file a restart keeps every queued message (without it a restart dropped them all).
  redis_dir=/var/lib/redis
  [ -d "$redis_dir" ] && [ -w "$redis_dir" ] || redis_dir="${ROOT:-$PWD}/.omnimedia/redis"
  mkdir -p "$redis_dir"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --appendonly yes --appendfsync everysec \
    --dir "$redis_dir"
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
# Headless Chromium renders Flower and the stats page in the ops tests.
if ! command -v chromium >/dev/null; then
  as_root apt-get install -y -qq chromium >/dev/null 2>&1 || { as_root apt-get update -qq >/dev/null; as_root apt-get install -y -qq chromium >/dev/null; }
fi
