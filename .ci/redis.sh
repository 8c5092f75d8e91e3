# Sourced by .ci/run: install (if missing) and start a throwaway Redis on a free loopback port.
start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "ci: installing redis-server from the distribution's packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) \
      >/dev/null 2>&1 || { echo "ci: could not install redis-server; fleet tests will skip"; return 1; }
  fi
  REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REDIS_DIR=$(mktemp -d)
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/redis.pid" >/dev/null
  for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  export JOBTRACK_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  echo "ci: redis on $JOBTRACK_TEST_REDIS_URL"
}

stop_redis() {
  if [ -n "${REDIS_DIR:-}" ] && [ -f "$REDIS_DIR/redis.pid" ]; then
    kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
  fi
}
