#!/bin/bash
# consume into a big store: 1M events through Kafka (building kafka journals with history),
# then 5,000 more: the second consume's wall time is open + one batch + commit.
# usage: consume_open.sh STORE_URL
set -e
STORE=$1
L=${LEDGER_CLI:-commission-ledger}; PY=${PYTHON:-python}
cd "$(dirname "$0")/../.."
$PY -c "from devkit.synthetic import write_jsonl; write_jsonl('/tmp/more5k.jsonl', 5000, seed=99); write_jsonl('/tmp/ev1m_s11.jsonl', 1000000, seed=11)"
PORT=$($PY -c "from devkit.broker import free_port; print(free_port())")
BIN=$($PY -c "from devkit.broker import tansu_binary; print(tansu_binary())")
$BIN broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT > /tmp/tansu-open.log 2>&1 &
BPID=$!; sleep 3
B=127.0.0.1:$PORT
$L publish --bootstrap-servers $B --topic ev --shares-topic sh --partitions 1 /tmp/ev1m_s11.jsonl | tail -1
/usr/bin/time -f "consume-1m %e s wall %U user %M KB" $L --store $STORE consume --bootstrap-servers $B --topic ev --shares-topic sh --until-idle 5 | tail -2
$L publish --bootstrap-servers $B --topic ev --shares-topic sh --partitions 1 /tmp/more5k.jsonl | tail -1
for i in 1 2 3; do
/usr/bin/time -f "consume-next-5k-run$i %e s wall %U user %M KB" $L --store $STORE consume --bootstrap-servers $B --topic ev --shares-topic sh --until-idle 1 | tail -1
$L publish --bootstrap-servers $B --topic ev --shares-topic sh --partitions 1 /tmp/more5k.jsonl >/dev/null
done
kill $BPID
