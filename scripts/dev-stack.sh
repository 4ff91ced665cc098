#!/usr/bin/env bash
# Installs (if absent) and starts what orderly needs on a Debian 12 machine:
# the build tools librdkafka needs for TLS (libssl-dev, pkg-config), stunnel
# for the TLS tests, Postgres, Redis and the Kafka-protocol broker tansu.
# Idempotent and quick when everything already runs.
#
#   scripts/dev-stack.sh up       install if needed, start, wait until ready
#   scripts/dev-stack.sh status   show what answers
#   scripts/dev-stack.sh down     stop the broker this script started
#
# Environment: ORDERLY_STACK_DIR (state, logs; default ~/.cache/orderly),
# ORDERLY_TANSU_BIN (a broker binary to use instead of building one).
set -euo pipefail

STACK_DIR=${ORDERLY_STACK_DIR:-$HOME/.cache/orderly}
TANSU_VERSION=0.6.0
TANSU_ROOT=$STACK_DIR/tansu-$TANSU_VERSION
KAFKA_PORT=9092
PG_PORT=5432
REDIS_PORT=6379

log() { printf '[dev-stack] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local deadline=$((SECONDS + $3))
  until port_open "$2"; do
    if ((SECONDS >= deadline)); then log "$1 did not open port $2 within $3 s"; return 1; fi
    sleep 0.2
  done
}

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Build and test tools: OpenSSL headers and pkg-config for librdkafka's TLS
# and SASL support (the rdkafka crate's `ssl` feature), stunnel for the TLS
# tests' broker front.
tools_up() {
  local missing=()
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  command -v stunnel >/dev/null || missing+=(stunnel4)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

postgres_up() {
  if port_open $PG_PORT; then log "postgres: running on $PG_PORT"; return; fi
  local installed=
  if ! command -v pg_ctlcluster >/dev/null; then
    log "postgres: installing"
    apt_install postgresql
    installed=1
  fi
  local version hba
  version=$(ls /etc/postgresql | sort -n | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if [ -n "$installed" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    # Local development only: trust TCP connections from this machine, as the
    # tests and the default ORDERLY_DATABASE_URL expect. On a systemd host
    # the package already started the cluster: stop it so the start below
    # reads the new rules.
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main stop 2>/dev/null || true
  fi
  log "postgres: starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
  wait_port postgres $PG_PORT 30
}

redis_up() {
  if port_open $REDIS_PORT; then log "redis: running on $REDIS_PORT"; return; fi
  if ! command -v redis-server >/dev/null; then
    log "redis: installing"
    apt_install redis-server
  fi
  log "redis: starting"
  redis-server --daemonize yes --bind 127.0.0.1 --port $REDIS_PORT --save "" --appendonly no \
    --dir /tmp --logfile "$STACK_DIR/redis.log"
  wait_port redis $REDIS_PORT 15
}

tansu_bin() {
  if [ -n "${ORDERLY_TANSU_BIN:-}" ]; then echo "$ORDERLY_TANSU_BIN"; return; fi
  if command -v tansu >/dev/null; then command -v tansu; return; fi
  if [ -x "$TANSU_ROOT/bin/tansu" ]; then echo "$TANSU_ROOT/bin/tansu"; return; fi
  # Built once and cached: about 12 minutes on 2 cores. --locked is required
  # (a newer transitive dependency breaks the build); dynostore gives the
  # in-memory storage engine.
  log "tansu: building $TANSU_VERSION once into $TANSU_ROOT (about 12 minutes)"
  cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore \
    --root "$TANSU_ROOT" >"$STACK_DIR/tansu-build.log" 2>&1 ||
    { log "tansu build failed; see $STACK_DIR/tansu-build.log"; exit 1; }
  echo "$TANSU_ROOT/bin/tansu"
}

kafka_up() {
  if port_open $KAFKA_PORT; then log "kafka: running on $KAFKA_PORT"; return; fi
  local bin
  bin=$(tansu_bin)
  log "kafka: starting tansu (in-memory storage) on $KAFKA_PORT"
  nohup "$bin" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ \
    >"$STACK_DIR/tansu.log" 2>&1 </dev/null &
  echo $! >"$STACK_DIR/tansu.pid"
  wait_port kafka $KAFKA_PORT 30
}

status() {
  for svc in "postgres $PG_PORT" "redis $REDIS_PORT" "kafka $KAFKA_PORT"; do
    set -- $svc
    if port_open "$2"; then echo "$1: up (127.0.0.1:$2)"; else echo "$1: down"; fi
  done
}

mkdir -p "$STACK_DIR"
case "${1:-up}" in
  up)
    tools_up
    postgres_up
    redis_up
    kafka_up
    status
    ;;
  status) status ;;
  down)
    if [ -f "$STACK_DIR/tansu.pid" ]; then
      kill "$(cat "$STACK_DIR/tansu.pid")" 2>/dev/null || true
      rm -f "$STACK_DIR/tansu.pid"
      log "kafka: stopped"
    fi
    ;;
  *) echo "usage: $0 [up|status|down]" >&2; exit 2 ;;
esac
