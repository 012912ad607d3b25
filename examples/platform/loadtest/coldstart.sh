#!/usr/bin/env bash
# Cold starts through the local platform: N services at zero replicas, the
# first request to each, one at a time, once with replicas that start at
# once and once with a simulated 50 ms application start-up
# (-startup-delay). For each request it prints curl's total time and the
# Server-Timing breakdown the platform adds (scale decision, replica
# ready, queued: from the activator's arrival; forwarded: the replica and
# the hop), then min / median / max of each. With LOAD=1 a background
# client keeps 8 requests in flight against another service meanwhile
# (go install github.com/rakyll/hey@v0.1.5 if missing). Run from the
# repository root:
#
#   examples/platform/loadtest/coldstart.sh [services]
set -euo pipefail
N=${1:-10}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$dir/platform" ./examples/platform

cat >"$dir/warm.yaml" <<EOF
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: warm, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/min-scale: "1"}
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go}]
EOF

measure() { # startup delay
  local files=(-f "$dir/warm.yaml")
  for i in $(seq 1 "$N"); do
    cat >"$dir/cold$i.yaml" <<EOF
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: cold$i, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/initial-scale: "0"}
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go}]
EOF
    files+=(-f "$dir/cold$i.yaml")
  done
  "$dir/platform" -quiet -addr 127.0.0.1:18180 -control 127.0.0.1:18181 -internal "" \
    -token-file "$dir/token" -startup-delay "$1" -config allow-zero-initial-scale=true "${files[@]}" \
    >/dev/null 2>"$dir/platform.log" &
  local plat=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null -H "Host: warm.default.localhost" http://127.0.0.1:18180/ && break
    sleep 0.1
  done
  sleep 1 # every revision Ready at zero and routed
  local load=
  if [ "${LOAD:-0}" = 1 ]; then
    HEY=${HEY:-$(go env GOPATH)/bin/hey}
    [ -x "$HEY" ] || go install github.com/rakyll/hey@v0.1.5
    "$HEY" -z 60s -c 8 -host warm.default.localhost http://127.0.0.1:18180/ >/dev/null &
    load=$!
    sleep 1
  fi
  echo "== replica start-up ${1}${load:+, with 8 requests in flight to another service}"
  for i in $(seq 1 "$N"); do
    curl -s -o /dev/null -D "$dir/h$i" -w "total;dur=%{time_total}\n" -H "Host: cold$i.default.localhost" \
      http://127.0.0.1:18180/ >"$dir/t$i"
    st=$(tr -d '\r' <"$dir/h$i" | sed -n 's/^[Ss]erver-[Tt]iming: //p')
    code=$(head -1 "$dir/h$i" | cut -d' ' -f2)
    total=$(awk -F'=' '{printf "%.1f", $2*1000}' "$dir/t$i")
    echo "cold$i: $code total ${total} ms; $st"
  done | tee "$dir/out"
  [ -n "$load" ] && kill "$load" 2>/dev/null
  kill "$plat"
  wait "$plat" 2>/dev/null || true
  # min / median / max of each metric, in ms.
  awk '{
      for (i = 1; i <= NF; i++) if ($i == "total") v["total"] = v["total"] " " $(i+1)
      while (match($0, /[a-z]+;dur=[0-9.]+/)) {
        split(substr($0, RSTART, RLENGTH), kv, ";dur=")
        v[kv[1]] = v[kv[1]] " " kv[2]
        $0 = substr($0, RSTART + RLENGTH)
      }
    }
    END {
      split("total scale ready queued forwarded", order, " ")
      for (k = 1; k <= 5; k++) {
        m = order[k]; if (!(m in v)) continue
        c = split(substr(v[m], 2), a, " ")
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        printf "  %-9s min %6.1f  median %6.1f  max %6.1f ms (%d requests)\n", m, a[1], a[int((c+1)/2)], a[c], c
      }
    }' "$dir/out"
}

measure 0s
measure 50ms
