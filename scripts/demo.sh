#!/usr/bin/env bash
# make demo: record from the bundled Bybit simulator for a short while, offline.
set -euo pipefail
port=${1:-8765}
seconds=${2:-20}
UV=${UV:-uv}
root=${RECORDER_OUTPUT_ROOT:-outputs}
dir="$root/$(date +%Y-%m-%d)/demo_$(date +%H-%M-%S)"
log=$(mktemp)

$UV run bybit-sim --port "$port" --trade-rate 20 >"$log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
    grep -q "listening" "$log" && break
    kill -0 $sim 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done
echo "simulator: $(grep listening "$log")"
echo "recording BTCUSDT and ETHUSDT from it for ${seconds}s ..."
$UV run recorder network=local symbols=btc_eth duration_seconds="$seconds" \
    health_log_interval=5 "hydra.run.dir=$dir"
echo
echo "session folder: $dir"
ls -la "$dir"
$UV run python -m recorder.summary "$dir"
