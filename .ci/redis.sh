# Sourced by .ci/run: install (if missing) and start a throwaway Redis on a free loopback port.
# Exports JOBTRACK_TEST_REDIS_URL only once that server answers PING, so a failed start makes
# tests/test_fleet.py fall back to starting redis-server itself (or skip, saying why) instead
# of failing against a dead URL.

# PING over bash's /dev/tcp: needs neither redis-cli nor Python.
_redis_ping() {
  local reply=""
  exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 1 reply <&3 || true
  exec 3<&- 3>&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "ci: installing redis-server from the distribution's packages"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
    ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server) \
      >/dev/null 2>&1 || { echo "ci: could not install redis-server; fleet tests will skip"; return 1; }
  fi
  REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REDIS_DIR=$(mktemp -d)
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/redis.pid" >/dev/null \
    || { echo "ci: redis-server did not start; fleet tests will start their own or skip"; return 1; }
  for _ in $(seq 50); do
    if _redis_ping "$REDIS_PORT"; then
      export JOBTRACK_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
      echo "ci: redis on $JOBTRACK_TEST_REDIS_URL"
      return 0
    fi
    sleep 0.1
  done
  echo "ci: redis-server on port $REDIS_PORT does not answer; fleet tests will start their own or skip"
  return 1
}

stop_redis() {
  if [ -n "${REDIS_DIR:-}" ]; then
    [ -f "$REDIS_DIR/redis.pid" ] && kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null
    rm -rf "$REDIS_DIR"
  fi
  return 0
}
