#!/usr/bin/env bash
# Cold starts through the local platform against the program's own
# start-up. For each of N runs, interleaved: the program started directly
# (exec until its port answers GET /), and the first request to one of N
# services at zero running the same program through the platform. It prints
# every run with the activator's Server-Timing breakdown, then min / p50 /
# p99 / max of the program's start-up, the first response through the
# platform, the platform's share (the difference, run by run) and each
# Server-Timing metric, with the load average. See coldstart/main.go.
#
# PROGRAM=greeter (default) runs examples/platform/programs/greeter with an
# HTTP readiness probe (PROBE=tcp for the platform's default TCP check);
# PROGRAM=builtin runs the built-in hello app, whose start-up alone is the
# platform binary serving it bare (-bare-app hello). Run from the
# repository root:
#
#   examples/platform/loadtest/coldstart.sh [runs]
set -euo pipefail
N=${1:-40}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/platform" ./examples/platform
go build -o "$dir/greeter" ./examples/platform/programs/greeter
go build -o "$dir/coldstart" ./examples/platform/loadtest/coldstart
program=${PROGRAM:-greeter}
[ "$program" = greeter ] && program=$dir/greeter
"$dir/coldstart" -platform "$dir/platform" -program "$program" -probe "${PROBE:-http}" -n "$N"
