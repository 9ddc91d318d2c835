#!/usr/bin/env bash
# What one CLI process costs from exec to exit, beside the docker CLI: every command pays
# it before its first request, and the daemon pays berth's share again for every shim it
# starts (the shim is the same executable).
#
#   bench/cli_start.sh          (run as root; R=30 rounds)
#
# Cases, run in turn round by round (interleaved: the load of a shared machine drifts):
#   --version      no daemon reached: exec, dynamic loading, argument parsing
#   ps             one request to an idle daemon of its own (berth's; a docker peer's)
#   shim           `berth shim` given no options: the shim's share of a container start up
#                  to its own argument check (berth only)
# For each: median wall ms, and with perf (linux-perf) the median CPU ms (task-clock) and
# page faults; then berth's ratio to docker.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."
R=${R:-30}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
bench_berth
bench_workdir bcli
start_berth_daemon
have_docker=0
if command -v dockerd >/dev/null && command -v containerd >/dev/null && command -v docker >/dev/null \
  && start_docker_peer "$work/d"; then
  have_docker=1
else
  echo "== docker: not measured (dockerd/containerd/docker not installed or not answering)"
fi
have_perf=0
command -v perf >/dev/null && perf stat -x, -e task-clock true >/dev/null 2>&1 && have_perf=1
[ "$have_perf" = 1 ] || echo "== perf not usable: wall times only"

t=$work/t
mkdir -p "$t"
# one CASE CMD...: runs CMD, appends "wall_us cpu_ms faults" to $t/CASE: the wall time of a
# plain run (perf's own start would dwarf it), CPU and faults from a second run under perf.
one() {
  local c=$1 t0 t1 cpu=- faults=-
  shift
  # bash's clock, read without a fork (a `date` process would be timed too).
  t0=${EPOCHREALTIME/./}
  "$@" >/dev/null 2>&1 || true
  t1=${EPOCHREALTIME/./}
  if [ "$have_perf" = 1 ]; then
    perf stat -x, -e task-clock,page-faults -o "$t/perf.out" -- "$@" >/dev/null 2>&1 || true
    cpu=$(awk -F, '$3 ~ /task-clock/ {print $1}' "$t/perf.out")
    faults=$(awk -F, '$3 ~ /page-faults/ {print $1}' "$t/perf.out")
  fi
  echo "$((t1 - t0)) $cpu $faults" >>"$t/$c"
}
med() { sort -n | awk '{a[NR]=$1} END { if (NR == 0 || a[1] == "-") { print "-"; exit } m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print m }'; }
col() { awk -v k="$2" '{print $k}' "$t/$1" | med; }

"$BERTH" ps >/dev/null
[ "$have_docker" = 1 ] && docker ps >/dev/null
for _ in $(seq "$R"); do
  one berth.version "$BERTH" --version
  [ "$have_docker" = 1 ] && one docker.version docker --version
  one berth.ps "$BERTH" ps
  [ "$have_docker" = 1 ] && one docker.ps docker ps
  one berth.shim "$BERTH" shim
done

echo "== $(uptime)"
printf '  %-12s %-7s %9s %9s %8s\n' case engine "wall ms" "cpu ms" faults
for c in version ps shim; do
  for e in berth docker; do
    [ -s "$t/$e.$c" ] || continue
    awk -v c="$c" -v e="$e" -v w="$(col "$e.$c" 1)" -v cpu="$(col "$e.$c" 2)" -v f="$(col "$e.$c" 3)" \
      'BEGIN { printf "  %-12s %-7s %9.2f %9s %8s\n", c, e, w / 1000, cpu == "-" ? "-" : sprintf("%.2f", cpu), f }'
  done
done
if [ "$have_docker" = 1 ]; then
  echo "== berth / docker, same run (median wall)"
  for c in version ps; do
    awk -v c="$c" -v b="$(col "berth.$c" 1)" -v d="$(col "docker.$c" 1)" \
      'BEGIN { printf "  %-12s %.2fx\n", c, b / d }'
  done
fi
