#!/bin/bash
# Read-command figures on an existing store, each a fresh process (wall, CPU, peak RSS).
# usage: benchmarks/scripts/read_figures.sh STORE_URL PROMOTER ORDER_ID [MERCHANT]
# (what docs/performance.md reports for the 10M store: STORE_URL=sqlite:///m10.db p17 o2 m25)
L=${LEDGER_CLI:-commission-ledger}; S="--store $1"; P=$2; O=$3; M=${4:-}
T() { local name=$1; shift; /usr/bin/time -f "$name %e s wall %U CPU-s %M KB" "$@" > /dev/null; }
echo "== $(uptime)"
for run in 1 2; do
  T payouts-json $L $S payouts --format json
  T "statement-$P-first-100" $L $S statement "$P" --limit 100 --format json
  T "explain-$O" $L $S explain "$O" --format json
  T dead-letters-100 $L $S dead-letters --limit 100 --format json
  if [ -n "$M" ]; then T "merchant-statement-$M" $L $S merchant-statement "$M" --format json; fi
done
echo "== $(uptime)"
