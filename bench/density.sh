#!/usr/bin/env bash
# Container density: N detached `sleep` containers started one after another, and what
# running N costs, for berth and, where installed, a docker peer of our own.
#
#   bench/density.sh [N]        (default 100; run as root)
#   DOCKER_N=0 bench/density.sh 1000     (berth only: DOCKER_N sets the peer's N)
#   NET=bridge bench/density.sh          (containers on the default network; default none)
#
# The engines run side by side. The latencies with 10 running are measured interleaved,
# round by round (on a shared machine the load drifts; interleaving spreads it evenly). The
# N are measured engine by engine, each with only its own containers running: one engine
# starts its N, is measured, and removes them before the next starts its own, in ROUNDS
# rounds (default 2) whose engine order alternates, so drift and whatever the first engine
# leaves behind (ext4 is slower to allocate inodes after a mass removal) fall on both
# alike. Interleaving container by container put each engine's start beside the other's N
# containers: docker's 100 Go shims and daemons slowed berth's `run -d` by 7 ms (17.8 ->
# 24.9 ms), which measured docker's background load, not berth. For each engine it reports:
#   start    per-container `run -d busybox sleep` wall time: median, p90, max, and the
#            mean of the first and the last 10 (does starting slow down as N grows?)
#   memory   per running container: shim RSS and PSS (from /proc/PID/smaps_rollup; for
#            docker the containerd-shim-runc-v2 processes), and the daemon's RSS growth
#            from idle to N running (dockerd + containerd for docker), per container
#   latency  median of R runs (R=10) of `ps`, `ps -a`, `inspect`, `exec true` and
#            `run --rm busybox true`, with 10 running and with N running
#   teardown per-container `rm -f` (kill + remove) wall time: median and total
# and then berth's ratio to docker for the issues' targets: start (run -d) <= 0.10x, `ps` with
# N (100) running <= 0.2x, kill+rm <= 0.25x.
# berth is the release build, on a daemon of its own. The docker peer is Debian's
# docker.io (dockerd + containerd), started by hand on their own data root, exec root and
# sockets, with no bridge and no iptables rules (hence NET=none by default: both engines
# then do the same work), and stopped at the end. Podman is measured if installed.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."
N=${1:-100}
DOCKER_N=${DOCKER_N:-$N}
R=${R:-10}
ROUNDS=${ROUNDS:-2}
NET=${NET:-none}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ "$N" -ge 10 ] || { echo "N must be at least 10" >&2; exit 1; }
bench_berth
bench_workdir bdens

scripts/mkbusybox > "$work/busybox.tar"

# ---- helpers ---------------------------------------------------------------------------

# now_us: sets $now to the wall clock in microseconds, read from bash's own EPOCHREALTIME
# (bash 5): no process is started to read it, so a figure is the command's alone (reading
# `date` twice added 2-3 ms to every figure, the same for every engine, which made the
# faster engine's ratio look worse than it is).
now_us() { now=${EPOCHREALTIME//[.,]/}; }

# stats < microseconds, one per line: "median p90 max" in ms.
stats() {
  sort -n | awk '{a[NR]=$1} END {
    m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2;
    p = a[int(NR*0.9 + 0.999)]; if (p == "") p = a[NR];
    printf "%.1f %.1f %.1f\n", m/1000, p/1000, a[NR]/1000 }'
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# shim_mem NAME PATTERN: "count rss_mib_per pss_mib_per" over processes whose cmdline
# matches NAME (a pgrep regex) and whose cmdline or executable path contains PATTERN.
# (berth's shim becomes `berth-monitor <fd>` once its container runs: the monitor is
# installed in the daemon's exec root, so its executable path names the daemon.)
shim_mem() {
  local name=$1 pat=$2 r=0 s=0 n=0 p
  for p in $(pgrep -f "$name" || true); do
    { tr '\0' ' ' < "/proc/$p/cmdline"; readlink "/proc/$p/exe"; } 2>/dev/null | grep -q -- "$pat" || continue
    r=$((r + $(rss_kb "$p"))); s=$((s + $(pss_kb "$p"))); n=$((n + 1))
  done
  awk -v r=$r -v s=$s -v n=$n 'BEGIN { if (n) printf "%d %.2f %.2f", n, r/n/1024, s/n/1024; else print "0 - -" }'
}

# ---- engines ------------------------------------------------------------------------------
# Each engine: a CLI function, its N, its daemon pids, and how to find its shims.
engines=()
declare -A cli_of n_of dpids_of shim_of shimpat_of label_of

start_berth_daemon
"$BERTH" import "$work/busybox.tar" busybox:latest >/dev/null
berth_cli() { "$BERTH" "$@"; }
engines+=(berth)
cli_of[berth]=berth_cli n_of[berth]=$N dpids_of[berth]=$berth_pid
shim_of[berth]="berth-monitor|berth shim" shimpat_of[berth]=$work/b
label_of[berth]="berth $("$BERTH" --version 2>/dev/null | head -1)"

if [ "$DOCKER_N" -gt 0 ] && command -v dockerd >/dev/null && command -v containerd >/dev/null \
  && command -v docker >/dev/null; then
  d=$work/d
  if start_docker_peer "$d"; then
    docker import "$work/busybox.tar" busybox:latest >/dev/null
    docker_cli() { docker "$@"; }
    engines+=(docker)
    cli_of[docker]=docker_cli n_of[docker]=$DOCKER_N dpids_of[docker]="$dockerd_pid $ctr_pid"
    shim_of[docker]=containerd-shim shimpat_of[docker]=$d/containerd.sock
    label_of[docker]="docker $(dockerd --version | awk '{print $3}' | tr -d ,) (dockerd+containerd)"
  fi
else
  echo "== docker: not measured (DOCKER_N=0 or dockerd/containerd not installed)"
fi

if command -v podman >/dev/null; then
  podman import "$work/busybox.tar" busybox:latest >/dev/null
  podman_cli() { podman "$@"; }
  engines+=(podman)
  cli_of[podman]=podman_cli n_of[podman]=$N dpids_of[podman]="" shim_of[podman]=conmon shimpat_of[podman]=conmon
  label_of[podman]="podman $(podman --version | awk '{print $3}')"
else
  echo "== podman: not installed; not measured"
fi

# ---- measurement, interleaved ------------------------------------------------------------

t=$work/t
mkdir -p "$t"
# timed ENGINE METRIC CMD...: runs CMD, appends its wall time (us) to $t/ENGINE.METRIC.
timed() {
  local e=$1 m=$2 t0
  shift 2
  now_us; t0=$now
  "$@" >/dev/null 2>&1 || echo "$e $m failed: $*" >&2
  now_us
  echo $((now - t0)) >>"$t/$e.$m"
}
median_of() { if [ -s "$t/$1.$2" ]; then stats <"$t/$1.$2" | awk '{print $1}'; else echo "-"; fi; }

# latency SUFFIX NAME [ENGINE...]: R interleaved rounds of ps, ps -a, inspect, exec, run --rm
# per engine (all engines unless named).
latency() {
  local sfx=$1 name=$2 e c
  shift 2
  local which=("$@")
  [ ${#which[@]} -gt 0 ] || which=("${engines[@]}")
  for e in "${which[@]}"; do # one warm-up each
    c=${cli_of[$e]}
    "$c" ps >/dev/null
    "$c" exec "$name" true >/dev/null 2>&1 || true
  done
  for _ in $(seq "$R"); do
    for e in "${which[@]}"; do
      c=${cli_of[$e]}
      timed "$e" "ps$sfx" "$c" ps
      timed "$e" "psa$sfx" "$c" ps -a
      timed "$e" "insp$sfx" "$c" inspect "$name"
      timed "$e" "exec$sfx" "$c" exec "$name" true
      timed "$e" "runrm$sfx" "$c" run --rm --network "$NET" busybox true
    done
  done
}

declare -A idle_of grown_of mem_of running_of
for e in "${engines[@]}"; do
  idle=0
  for p in ${dpids_of[$e]}; do idle=$((idle + $(rss_kb "$p"))); done
  idle_of[$e]=$idle
done
# With 10 running.
for i in $(seq 10); do
  for e in "${engines[@]}"; do "${cli_of[$e]}" run -d --network "$NET" --name "d$i" busybox sleep 100000 >/dev/null; done
done
latency 10 d5
for i in $(seq 10); do
  for e in "${engines[@]}"; do "${cli_of[$e]}" rm -f "d$i" >/dev/null; done
done
# Each engine's N started one after another with only its own running, measured, and
# removed; ROUNDS rounds, the engine order reversed every other round. Memory is read in the
# first round (daemon growth from idle); the times of every round are pooled.
for round in $(seq "$ROUNDS"); do
  order=("${engines[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((k = ${#engines[@]} - 1; k >= 0; k--)); do order+=("${engines[$k]}"); done
  fi
  for e in "${order[@]}"; do
    c=${cli_of[$e]} n=${n_of[$e]}
    for i in $(seq "$n"); do
      timed "$e" start "$c" run -d --network "$NET" --name "d$i" busybox sleep 100000
    done
    sleep 1
    if [ "$round" -eq 1 ]; then
      grown=0
      for p in ${dpids_of[$e]}; do grown=$((grown + $(rss_kb "$p"))); done
      grown_of[$e]=$grown
      mem_of[$e]=$(shim_mem "${shim_of[$e]}" "${shimpat_of[$e]}")
      running_of[$e]=$("$c" ps -q | wc -l)
    fi
    latency N "d$((n / 2))" "$e"
    for i in $(seq "$n"); do timed "$e" rm "$c" rm -f "d$i"; done
  done
done

# ---- report --------------------------------------------------------------------------------

echo "load: $(uptime | sed 's/.*load average/load average/')"
for e in "${engines[@]}"; do
  n=${n_of[$e]}
  first=$(head -10 "$t/$e.start" | awk '{s+=$1} END {printf "%.1f", s/NR/1000}')
  last=$(tail -10 "$t/$e.start" | awk '{s+=$1} END {printf "%.1f", s/NR/1000}')
  read -r smed sp90 smax < <(stats <"$t/$e.start")
  read -r rmed _ rmax < <(stats <"$t/$e.rm")
  rtotal=$(awk '{s+=$1} END {printf "%.1f", s/1e6}' "$t/$e.rm")
  read -r nshims srss spss <<<"${mem_of[$e]}"
  idle=${idle_of[$e]} grown=${grown_of[$e]}
  echo "== ${label_of[$e]}: N=$n, $ROUNDS rounds (network $NET; ${running_of[$e]} running at the measurement)"
  printf '  start (run -d)   median %s ms, p90 %s ms, max %s ms; first 10 mean %s ms, last 10 mean %s ms\n' \
    "$smed" "$sp90" "$smax" "$first" "$last"
  printf '  shim             %s shims: RSS %s MiB, PSS %s MiB per container\n' "$nshims" "$srss" "$spss"
  printf '  daemon RSS       idle %.1f MiB -> %.1f MiB with N running: +%.1f KiB per container\n' \
    "$(awk -v v="$idle" 'BEGIN{print v/1024}')" "$(awk -v v="$grown" 'BEGIN{print v/1024}')" \
    "$(awk -v a="$idle" -v b="$grown" -v n="$n" 'BEGIN{print (b-a)/n}')"
  printf '  %-20s %10s %10s %8s   (median of %s, ms)\n' "" "10 running" "N running" "N/10" "$R"
  for m in "ps:ps" "psa:ps -a" "insp:inspect" "exec:exec true" "runrm:run --rm true"; do
    a=$(median_of "$e" "${m%%:*}10")
    b=$(median_of "$e" "${m%%:*}N")
    printf '  %-20s %10s %10s %8s\n' "${m#*:}" "$a" "$b" \
      "$(awk -v a="$a" -v b="$b" 'BEGIN{ if (a>0) printf "%.2fx", b/a; else print "-" }')"
  done
  printf '  rm -f (kill+rm)  median %s ms, max %s ms, total %s s for %s\n' "$rmed" "$rmax" "$rtotal" "$n"
done
if [[ " ${engines[*]} " == *" docker "* ]]; then
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2fx", a/b; else print "-" }'; }
  row() { printf '  %-26s %9s %9s %7s %s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"; }
  echo "== berth / docker, same run (ms; target)"
  printf '  %-26s %9s %9s %7s %s\n' "" berth docker ratio target
  row "start (run -d) median" "$(median_of berth start)" "$(median_of docker start)" "<= 0.10x"
  row "ps, N running" "$(median_of berth psN)" "$(median_of docker psN)" "<= 0.2x (N=100)"
  row "ps, 10 running" "$(median_of berth ps10)" "$(median_of docker ps10)" ""
  row "rm -f (kill+rm) median" "$(median_of berth rm)" "$(median_of docker rm)" "<= 0.25x"
  row "run --rm true, N running" "$(median_of berth runrmN)" "$(median_of docker runrmN)" ""
fi
