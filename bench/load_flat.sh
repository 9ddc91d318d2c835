#!/usr/bin/env bash
# Flat with load: do per-request latencies and the daemon's memory stay flat as the number
# of running containers grows? One berth daemon of its own; all containers on `--network none`.
#
#   bench/load_flat.sh [N]          (default 200; run as root)
#   BERTH=<path> bench/load_flat.sh (measure a binary already built; skips the release build)
#   R=<rounds>                      (default 20)
#   TMPDIR=<dir>                    (where its data and exec roots go; default /tmp)
#
# Runs compared with each other want the same state of the host: on a journal-less ext4, the
# files an earlier run deleted slow the next one's file creation for minutes (inodes deleted
# within 60 s, or 360 s while their table block is dirty, are skipped), and memory cgroups
# of removed containers linger while page cache is charged to them. A fresh tmpfs as TMPDIR
# and `echo 1 > /proc/sys/vm/drop_caches` before each run give every run the same start.
#
# Prints, with 1 and with N+1 containers running: the median of R runs of
# `run --rm busybox true`, `exec true`, `ps`, `inspect`, and the ratio N/1; the daemon's RSS
# idle after start (1 s, and settled 4 s later), with N running, and after all were removed
# (and again after 5 s).
#
# `run --rm` is timed two ways. Back to back, each run starts while the kernel still tears
# down the previous one's cgroups: taking a memory cgroup offline walks the LRU lists of
# every superblock on the host (two per superblock; a container has seven) under the
# cgroup and list_lru mutexes, which the next container's cgroup creation and mounts wait
# for. Spaced (100 ms between runs), each run finds the host settled, as a single `run`
# does. Both still pay what grows in the kernel's create path itself (pivot_root walks
# every task, a sysfs mount every sysfs superblock, a new memory cgroup sizes its shrinker
# state by the superblock count): docs/ARCHITECTURE.md has the profile. The bare runtimes (crun, runc: `common.sh` runtime_floors), where installed, are
# timed both ways beside berth, with the same N berth containers running: what the host
# costs any engine.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-200}
R=${R:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  cargo build --release -p berth >&2
  TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BERTH=$TARGET/release/berth
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bflat.XXXXXX")
daemon_pid=
cleanup() {
  set +e
  for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
  [ -n "$daemon_pid" ] && { kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; }
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
  runtime_floors_cleanup
}
trap cleanup EXIT
scripts/mkbusybox > "$work/busybox.tar"
runtime_floors "$work/busybox.tar"

# now_us: sets $now to the wall clock in microseconds, read from bash's own EPOCHREALTIME
# (bash 5): no process is started to read it, so a figure is the command's alone (reading
# `date` twice added 2-3 ms to every figure, the same for every engine, which made the
# faster engine's ratio look worse than it is).
now_us() { now=${EPOCHREALTIME//[.,]/}; }
# median_ms CMD...: median wall time of R runs (after one warm-up), in ms; with GAP set,
# GAP seconds pass before each run (not timed).
median_ms() {
  local t0 times=()
  "$@" >/dev/null 2>&1 || { echo "failed"; return 0; }
  for _ in $(seq "$R"); do
    [ -n "${GAP:-}" ] && sleep "$GAP"
    now_us; t0=$now
    "$@" >/dev/null 2>&1 || { echo "failed"; return 0; }
    now_us; times+=($((now - t0)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {
    m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1000 }'
}
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }

export BERTH_HOST=unix://$work/api.sock BERTH_NO_AUTOSTART=1
echo '{}' > "$work/daemon.json"
"$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/data" --exec-root "$work/run" \
  --config-file "$work/daemon.json" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1
idle=$(rss_mib "$daemon_pid"); idle_threads=$(threads "$daemon_pid")
sleep 4 # past the daemon's start-up trim (daemon/memory.rs)
settled=$(rss_mib "$daemon_pid")
"$BERTH" import "$work/busybox.tar" busybox:latest >/dev/null

# measure STATE: fills fig[STATE,<row>] for every row of the table.
declare -A fig
rows=("run --rm true" "run --rm true, spaced" "exec true" "ps" "inspect")
for rt in "${floors[@]}"; do rows+=("$rt run true" "$rt run true, spaced"); done
measure() {
  local s=$1 rt
  fig[$s,run --rm true]=$(median_ms "$BERTH" run --rm --network none busybox true)
  fig[$s,run --rm true, spaced]=$(GAP=0.1 median_ms "$BERTH" run --rm --network none busybox true)
  fig[$s,exec true]=$(median_ms "$BERTH" exec probe true)
  fig[$s,ps]=$(median_ms "$BERTH" ps)
  fig[$s,inspect]=$(median_ms "$BERTH" inspect probe)
  for rt in "${floors[@]}"; do
    fig[$s,$rt run true]=$(median_ms "$work/$rt-run")
    fig[$s,$rt run true, spaced]=$(GAP=0.1 median_ms "$work/$rt-run")
  done
}
"$BERTH" run -d --network none --name probe busybox sleep 100000 >/dev/null
measure a
now_us; t0=$now
for i in $(seq "$N"); do "$BERTH" run -d --network none --name "l$i" busybox sleep 100000 >/dev/null; done
now_us; start_ms=$(( (now - t0) / 1000 ))
sleep 1
loaded=$(rss_mib "$daemon_pid"); loaded_threads=$(threads "$daemon_pid")
measure b
now_us; t0=$now
for i in $(seq "$N"); do "$BERTH" rm -f "l$i" >/dev/null; done
now_us; rm_ms=$(( (now - t0) / 1000 ))
"$BERTH" rm -f probe >/dev/null
sleep 1
after=$(rss_mib "$daemon_pid")
sleep 5
after5=$(rss_mib "$daemon_pid")

echo "== berth: load N=$N (network none; median of $R, ms)"
printf '  %-24s %10s %10s %8s\n' "" "1 running" "N+1" "ratio"
row() { printf '  %-24s %10s %10s %8s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{ if (a>0) printf "%.2fx", b/a; else print "-" }')"; }
for r in "${rows[@]}"; do row "$r" "${fig[a,$r]}" "${fig[b,$r]}"; done
printf '  start of N: %s ms (%s ms each); rm -f of N: %s ms (%s ms each)\n' \
  "$start_ms" "$((start_ms / N))" "$rm_ms" "$((rm_ms / N))"
printf '  daemon RSS: idle %s MiB (%s threads), settled %s MiB, N running %s MiB (%s threads), after rm %s MiB, 5 s later %s MiB\n' \
  "$idle" "$idle_threads" "$settled" "$loaded" "$loaded_threads" "$after" "$after5"
