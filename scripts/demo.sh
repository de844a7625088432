#!/usr/bin/env bash
# make demo: record from the bundled Bybit simulator for a short while, offline.
# Halfway through, the simulator drops the connection and refuses reconnects for
# 2 s, so the demo also shows a gap being refilled over REST and recorded.
set -euo pipefail
port=${1:-8765}
seconds=${2:-20}
UV=${UV:-uv}
root=${RECORDER_OUTPUT_ROOT:-outputs}
dir="$root/$(date +%Y-%m-%d)/demo_$(date +%H-%M-%S)"
log=$(mktemp)
base="http://127.0.0.1:$port"

# One line, with the hint, when the port is taken (make demo checks it before this too).
python3 "$(dirname "$0")/port_free.py" "$port" demo || exit 1
$UV run bybit-sim --port "$port" --trade-rate 20 >"$log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
    grep -q "^bybit-sim listening" "$log" && break
    if ! kill -0 $sim 2>/dev/null; then
        if grep -q "address already in use" "$log"; then
            echo "port $port is in use (another bybit-sim?): pick a free one, e.g. make demo SIM_PORT=$((port + 1))" >&2
        else
            cat "$log" >&2
        fi
        exit 1
    fi
    sleep 0.1
done
echo "simulator: $(grep -m1 '^bybit-sim listening' "$log")"
echo "recording BTCUSDT and ETHUSDT from it for ${seconds}s (a disconnect is injected halfway) ..."

fault() {  # POST /sim/faults/NAME with a JSON body
    $UV run python -c "import sys, urllib.request as u; u.urlopen(u.Request('$base/sim/faults/' + sys.argv[1], data=sys.argv[2].encode(), method='POST', headers={'Content-Type': 'application/json'}))" "$1" "$2"
}

$UV run recorder network=local symbols=btc_eth duration_seconds="$seconds" \
    "network.rest_url=$base" "network.public_ws_url='ws://127.0.0.1:$port/v5/public/{category}'" \
    "network.private_ws_url=ws://127.0.0.1:$port/v5/private" \
    health_log_interval=5 "hydra.run.dir=$dir" &
recorder=$!
sleep $((seconds / 2))
fault refuse_connections '{"seconds": 2}'
fault drop_connections '{}'
echo ">>> simulator dropped every connection and refuses reconnects for 2 s"
status=0
wait $recorder || status=$?

echo
echo "session folder: $dir"
ls -la "$dir"
$UV run python -m recorder_tools.summary "$dir"
echo
$UV run recorder-report "$dir"
exit $status
