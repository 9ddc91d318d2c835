#!/usr/bin/env bash
# Container density: N detached `sleep` containers started one after another, and what
# running N costs, for berth and, where installed, a docker peer of our own.
#
#   bench/density.sh [N]        (default 100; run as root)
#   DOCKER_N=0 bench/density.sh 1000     (berth only: DOCKER_N sets the peer's N)
#   NET=bridge bench/density.sh          (containers on the default network; default none)
#
# For each engine it reports:
#   start    per-container `run -d busybox sleep` wall time: median, p90, max, and the
#            mean of the first and the last 10 (does starting slow down as N grows?)
#   memory   per running container: shim RSS and PSS (from /proc/PID/smaps_rollup; for
#            docker the containerd-shim-runc-v2 processes), and the daemon's RSS growth
#            from idle to N running (dockerd + containerd for docker), per container
#   latency  median of R runs (R=10) of `ps`, `ps -a`, `inspect`, `exec true` and
#            `run --rm busybox true`, with 10 running and with N running
#   teardown per-container `rm -f` (kill + remove) wall time: median and total
# berth is the release build, on a daemon of its own. The docker peer is Debian's
# docker.io (dockerd + containerd), started by hand on their own data root, exec root and
# sockets, with no bridge and no iptables rules (hence NET=none by default: both engines
# then do the same work), and stopped at the end. Podman is measured if installed.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
DOCKER_N=${DOCKER_N:-$N}
R=${R:-10}
NET=${NET:-none}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ "$N" -ge 10 ] || { echo "N must be at least 10" >&2; exit 1; }
# BERTH=<path> measures a binary already built (and skips the release build).
if [ -z "${BERTH:-}" ]; then
  cargo build --release -p berth >&2
  TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BERTH=$TARGET/release/berth
fi

work=$(mktemp -d /tmp/bdens.XXXXXX)
pids_to_stop=()
cleanup() {
  set +e
  [ -n "${BERTH_HOST:-}" ] && for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
  [ -n "${DOCKER_HOST:-}" ] && for id in $(docker ps -aq 2>/dev/null); do docker rm -f "$id" >/dev/null 2>&1; done
  for p in "${pids_to_stop[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

scripts/mkbusybox > "$work/busybox.tar"

# ---- helpers ---------------------------------------------------------------------------

now_us() { echo $(( $(date +%s%N) / 1000 )); }

# stats < microseconds, one per line: "median p90 max" in ms.
stats() {
  sort -n | awk '{a[NR]=$1} END {
    m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2;
    p = a[int(NR*0.9 + 0.999)]; if (p == "") p = a[NR];
    printf "%.1f %.1f %.1f\n", m/1000, p/1000, a[NR]/1000 }'
}

# median_ms CMD...: median wall time of R runs of CMD (after one warm-up), in ms.
median_ms() {
  local t0 times=()
  "$@" >/dev/null 2>&1 || { echo "failed"; return 0; }
  for _ in $(seq "$R"); do
    t0=$(now_us); "$@" >/dev/null 2>&1 || { echo "failed"; return 0; }
    times+=($(( $(now_us) - t0 )))
  done
  printf '%s\n' "${times[@]}" | stats | awk '{print $1}'
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

# bench ENGINE_LABEL CLI N DAEMON_PIDS SHIM_NAME SHIM_PATTERN
# CLI is a function name that runs the engine's CLI with its arguments.
bench() {
  local label=$1 cli=$2 n=$3 dpids=$4 shim=$5 shimpat=$6
  local idle=0 p i t0 starts=() rms=()
  for p in $dpids; do idle=$((idle + $(rss_kb "$p"))); done

  for i in $(seq 10); do "$cli" run -d --network "$NET" --name "d$i" busybox sleep 100000 >/dev/null; done
  local ps10 psa10 insp10 exec10 runrm10
  ps10=$(median_ms "$cli" ps)
  psa10=$(median_ms "$cli" ps -a)
  insp10=$(median_ms "$cli" inspect d5)
  exec10=$(median_ms "$cli" exec d5 true)
  runrm10=$(median_ms "$cli" run --rm --network "$NET" busybox true)
  for i in $(seq 10); do "$cli" rm -f "d$i" >/dev/null; done

  for i in $(seq "$n"); do
    t0=$(now_us)
    "$cli" run -d --network "$NET" --name "d$i" busybox sleep 100000 >/dev/null
    starts+=($(( $(now_us) - t0 )))
  done
  sleep 1
  local grown=0 mem
  for p in $dpids; do grown=$((grown + $(rss_kb "$p"))); done
  mem=$(shim_mem "$shim" "$shimpat")
  local psn psan inspn execn runrmn
  psn=$(median_ms "$cli" ps)
  psan=$(median_ms "$cli" ps -a)
  inspn=$(median_ms "$cli" inspect "d$((n / 2))")
  execn=$(median_ms "$cli" exec "d$((n / 2))" true)
  runrmn=$(median_ms "$cli" run --rm --network "$NET" busybox true)
  local running
  running=$("$cli" ps -q | wc -l)

  for i in $(seq "$n"); do
    t0=$(now_us)
    "$cli" rm -f "d$i" >/dev/null
    rms+=($(( $(now_us) - t0 )))
  done

  local first last
  first=$(printf '%s\n' "${starts[@]:0:10}" | awk '{s+=$1} END {printf "%.1f", s/NR/1000}')
  last=$(printf '%s\n' "${starts[@]: -10}" | awk '{s+=$1} END {printf "%.1f", s/NR/1000}')
  read -r smed sp90 smax < <(printf '%s\n' "${starts[@]}" | stats)
  read -r rmed _ rmax < <(printf '%s\n' "${rms[@]}" | stats)
  local rtotal
  rtotal=$(printf '%s\n' "${rms[@]}" | awk '{s+=$1} END {printf "%.1f", s/1e6}')
  read -r nshims srss spss <<<"$mem"

  echo "== $label: N=$n (network $NET; $running running at the measurement)"
  printf '  start (run -d)   median %s ms, p90 %s ms, max %s ms; first 10 mean %s ms, last 10 mean %s ms\n' \
    "$smed" "$sp90" "$smax" "$first" "$last"
  printf '  shim             %s shims: RSS %s MiB, PSS %s MiB per container\n' "$nshims" "$srss" "$spss"
  printf '  daemon RSS       idle %.1f MiB -> %.1f MiB with N running: +%.1f KiB per container\n' \
    "$(awk -v v=$idle 'BEGIN{print v/1024}')" "$(awk -v v=$grown 'BEGIN{print v/1024}')" \
    "$(awk -v a=$idle -v b=$grown -v n=$n 'BEGIN{print (b-a)/n}')"
  printf '  %-20s %10s %10s   (median of %s, ms)\n' "" "10 running" "N running" "$R"
  printf '  %-20s %10s %10s\n' "ps" "$ps10" "$psn" "ps -a" "$psa10" "$psan" "inspect" "$insp10" "$inspn" \
    "exec true" "$exec10" "$execn" "run --rm true" "$runrm10" "$runrmn"
  printf '  rm -f (kill+rm)  median %s ms, max %s ms, total %s s for %s\n' "$rmed" "$rmax" "$rtotal" "$n"
}

# ---- berth -----------------------------------------------------------------------------

export BERTH_HOST=unix://$work/b/api.sock BERTH_NO_AUTOSTART=1
mkdir -p "$work/b"
echo '{}' > "$work/b/daemon.json"
"$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/b/data" --exec-root "$work/b/run" \
  --config-file "$work/b/daemon.json" >"$work/b/daemon.log" 2>&1 &
berth_pid=$!
pids_to_stop+=("$berth_pid")
for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
"$BERTH" import "$work/busybox.tar" busybox:latest >/dev/null
berth_cli() { "$BERTH" "$@"; }
bench "berth $("$BERTH" --version 2>/dev/null | head -1)" berth_cli "$N" "$berth_pid" "berth-monitor|berth shim" "$work/b"

# ---- docker peer ------------------------------------------------------------------------

if [ "$DOCKER_N" -gt 0 ] && command -v dockerd >/dev/null && command -v containerd >/dev/null \
  && command -v docker >/dev/null; then
  d=$work/d
  mkdir -p "$d"
  cat > "$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd"
state = "$d/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = "$d/containerd-debug.sock"
[metrics]
  address = ""
EOF
  echo '{}' > "$d/daemon.json"
  containerd --config "$d/containerd.toml" >"$d/containerd.log" 2>&1 &
  ctr_pid=$!
  pids_to_stop+=("$ctr_pid")
  for _ in $(seq 100); do [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
  dockerd --data-root "$d/data" --exec-root "$d/exec" -H "unix://$d/docker.sock" --pidfile "$d/docker.pid" \
    --containerd "$d/containerd.sock" --bridge none --iptables=false --ip6tables=false --ip-masq=false \
    --userland-proxy=false --config-file "$d/daemon.json" >"$d/dockerd.log" 2>&1 &
  dockerd_pid=$!
  pids_to_stop=("$dockerd_pid" "${pids_to_stop[@]}")
  export DOCKER_HOST=unix://$d/docker.sock
  for _ in $(seq 200); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
  if docker version >/dev/null 2>&1; then
    docker import "$work/busybox.tar" busybox:latest >/dev/null
    docker_cli() { docker "$@"; }
    bench "docker $(dockerd --version | awk '{print $3}' | tr -d ,) (dockerd+containerd)" docker_cli "$DOCKER_N" \
      "$dockerd_pid $ctr_pid" "containerd-shim" "$d/containerd.sock"
  else
    echo "== docker: dockerd did not answer; see $d/dockerd.log" >&2
    tail -5 "$d/dockerd.log" >&2
  fi
else
  echo "== docker: not measured (DOCKER_N=0 or dockerd/containerd not installed)"
fi

if command -v podman >/dev/null; then
  podman import "$work/busybox.tar" busybox:latest >/dev/null
  podman_cli() { podman "$@"; }
  bench "podman $(podman --version | awk '{print $3}')" podman_cli "$N" "" "conmon" "conmon"
else
  echo "== podman: not installed; not measured"
fi
