#!/usr/bin/env bash
# Load test of the local platform with hey (go install github.com/rakyll/hey@v0.1.5):
# requests/s and latency of the bare demo app, of one replica (app behind
# queue, in process), and of the full path through the gateway in Serve
# mode and in Proxy mode (cold starts: coldstart.sh). Run from the
# repository root:
#
#   examples/platform/loadtest/run.sh [duration] [concurrency]
set -euo pipefail
D=${1:-10s}
C=${2:-32}
HEY=${HEY:-$(go env GOPATH)/bin/hey}
[ -x "$HEY" ] || go install github.com/rakyll/hey@v0.1.5
dir=$(dirname "$0")
bin=$(mktemp -d)/platform
go build -o "$bin" ./examples/platform

"$bin" -bare-app hello -addr 127.0.0.1:18090 >/dev/null &
bare=$!
"$bin" -bare-proxy 127.0.0.1:18090 -addr 127.0.0.1:18095 >/dev/null &
bareproxy=$!
"$bin" -quiet -addr 127.0.0.1:18080 -control 127.0.0.1:18081 -startup-delay 50ms \
  -config allow-zero-initial-scale=true -config stable-window=6s -config scale-to-zero-grace-period=1s \
  -f "$dir/serve-proxy.yaml" -f "$dir/proxy.yaml" >/dev/null &
plat=$!
trap 'kill $bare $bareproxy $plat 2>/dev/null; wait 2>/dev/null' EXIT
sleep 3

replica=$(curl -s 127.0.0.1:18081/status | sed -n 's/.*"serve": "\(127.0.0.1:[0-9]*\)".*/\1/p' | head -1)
curl -s 127.0.0.1:18081/ ; echo

run() { # name, url, extra hey args
  echo "== $1"
  "$HEY" -z "$D" "${@:3}" "$2" | grep -E 'Requests/sec|50%|90%|99%|\[2..\]|\[[345]..\]|Error'
}
# Saturation (-c $C, as fast as it goes), then a fixed 1,000 requests/s
# (10 clients × 100/s) where latency shows what each path adds.
for load in "-c $C" "-c 10 -q 100"; do
  echo; echo "######## hey $load"
  run "bare app (no queue)" "http://127.0.0.1:18090/" $load
  run "bare app behind a plain httputil.ReverseProxy (one extra hop)" "http://127.0.0.1:18095/" $load
  run "one replica: app behind queue, in process" "http://$replica/" $load
  run "gateway, Serve mode (router → front door → replica)" "http://127.0.0.1:18080/" $load -host serve.default.localhost
  run "gateway, Proxy mode (router → front door → activator → replica)" "http://127.0.0.1:18080/" $load -host proxy.default.localhost
done
curl -s 127.0.0.1:18081/ ; echo

# Cold starts from zero: see coldstart.sh.
