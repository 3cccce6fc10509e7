# Sourced by conformance suites that need a real PostgreSQL server. Not a suite itself (no main,
# never run directly), so it lives in lib/, which scripts/test does not scan. Starts a throw-away
# cluster of Debian's PostgreSQL 15 in a fresh temporary folder, listening only on a unix socket
# inside it, and stops and deletes it on exit.
#
#   source tests/conformance/lib/pg_server.sh
#   pg_start            # sets PG_URI (postgresql://...), PG_DIR; installs an EXIT trap
#   pg_psql -c "..."    # psql connected to PG_URI (ON_ERROR_STOP)
#   pg_stop             # optional; the trap does it
#
# The server runs as the `postgres` user (initdb refuses root); when the shell is not root it runs
# as the current user. pg_start returns 1 with a message when no server binaries are installed or
# the server does not start; suites treat that as a failure. A caller's own EXIT trap should call
# pg_stop.

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DIR=""
PG_URI=""

_pg_as() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_stop() {
  [[ -n "$PG_DIR" && -d "$PG_DIR" ]] || return 0
  _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}

pg_start() {
  if [[ ! -x "$PG_BIN/initdb" ]]; then
    echo "pg_server.sh: no PostgreSQL server binaries in $PG_BIN" >&2
    return 1
  fi
  PG_DIR="$(mktemp -d /tmp/kexa-pg.XXXXXX)"
  chmod 755 "$PG_DIR"
  if [[ "$(id -u)" == 0 ]]; then chown postgres:postgres "$PG_DIR"; fi
  _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # No TCP listener: only the socket in PG_DIR, so parallel suites never collide on a port.
  _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$PG_DIR' -c fsync=off -c full_page_writes=off" start \
    >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
  PG_URI="postgresql://postgres@/postgres?host=$PG_DIR"
  trap pg_stop EXIT
  export PG_URI PG_DIR
}

pg_psql() {
  psql -X -q -v ON_ERROR_STOP=1 "$PG_URI" "$@"
}
