#!/usr/bin/env bash
# Container start latency and memory, side by side with the bare OCI runtimes and, where
# installed, docker (a private dockerd started here) and podman — interleaved round by
# round, as a noisy shared machine needs: every round runs each engine once, in an order
# that rotates, so a slow second hits all engines alike.
#
#   bench/run_latency.sh [RUNS]          (default 20 rounds; run as root)
#   BERTH_BIN=/path/to/berth bench/run_latency.sh   (skip the release build)
#   TRACE=1 bench/run_latency.sh         (also: where berth's time goes, phase by phase,
#                                          from BERTH_TRACE_START marks of daemon and shim)
#   DOCKER=0 / PODMAN=0                  (leave an installed peer out)
#   LOAD=N                               (N `run -d --network none busybox sleep` containers
#                                          running in berth's daemon through the rounds)
#   TMPDIR=<dir>                         (where every engine's data goes; default /tmp. A fresh
#                                          tmpfs keeps an earlier run's mass removals on a
#                                          journal-less ext4 from slowing this one: see
#                                          load_flat.sh)
#
# Engines, each `run --rm busybox true` (or its bare equivalent), median wall time:
#   berth          against a daemon of its own, --network none
#   berth bridge   the same on the default bridge (what a plain `berth run` does)
#   crun / runc    `crun run` / `runc run` of the same rootfs as a plain OCI bundle (floor)
#   docker         a private dockerd + containerd (own data root, exec root, sockets;
#                  no bridge, no iptables), --network none
#   podman         `podman run --rm --network none` (if installed)
# then ratios (targets, issue 11: berth <= 2x crun, <= 0.10x docker), the RSS/PSS of the
# process that stays with each running container (berth's shim, docker's containerd-shim)
# over MEM_N running containers (default 20), and the idle daemon's RSS.
# The crun and runc floors come from common.sh (runtime_floors), which also explains the
# hugetlb hierarchy it may bind for crun.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
RUNS=${1:-20}
MEM_N=${MEM_N:-20}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -p berth >&2
  BERTH_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi
BERTH=$BERTH_BIN

work=$(mktemp -d "${TMPDIR:-/tmp}/bbench.XXXXXX")
tag=$(basename "$work" | tr -dc 'a-zA-Z0-9' | tail -c 6)
daemon_pid=; dockerd_pid=; containerd_pid=
cleanup() {
  set +e
  if [ -n "$daemon_pid" ]; then
    for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  if [ -n "$dockerd_pid" ]; then
    for id in $(docker -H "unix://$work/d/docker.sock" ps -aq 2>/dev/null); do
      docker -H "unix://$work/d/docker.sock" rm -f "$id" >/dev/null 2>&1
    done
    kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null
  fi
  [ -n "$containerd_pid" ] && { kill "$containerd_pid" 2>/dev/null; wait "$containerd_pid" 2>/dev/null; }
  nft delete table inet "bench_$tag" 2>/dev/null
  ip link del "bb$tag" 2>/dev/null
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
  runtime_floors_cleanup
}
trap cleanup EXIT

export BERTH_HOST=unix://$work/api.sock BERTH_NO_AUTOSTART=1
echo '{}' > "$work/daemon.json"
trace_file=
if [ "${TRACE:-0}" = 1 ]; then trace_file=$work/trace.log; fi
BERTH_TRACE_START=$trace_file "$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/data" \
  --exec-root "$work/run" --config-file "$work/daemon.json" --bridge "bb$tag" \
  --nft-table "bench_$tag" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
daemon_rss_idle=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/$daemon_pid/status)
# Settled: the daemon gives back its start-up's heap and code pages 3 s after it started
# (daemon/memory.rs); the first figure depends on how much of the binary the page cache
# holds, and in how large folios (a binary just written or read whole maps more per fault).
sleep 4
daemon_rss_settled=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/$daemon_pid/status)
scripts/mkbusybox > "$work/busybox.tar"
"$BERTH" import "$work/busybox.tar" busybox:latest >/dev/null

engines=(berth "berth bridge")
declare -A cmd
cmd[berth]="$BERTH run --rm --network none busybox true"
cmd[berth bridge]="$BERTH run --rm busybox true"
if [ -n "$trace_file" ]; then
  # What the seccomp filter costs (libcontainer compiles it with libseccomp in the init).
  engines+=("berth unconfined")
  cmd[berth unconfined]="$BERTH run --rm --network none --security-opt seccomp=unconfined busybox true"
fi

# The bare floor: the same rootfs as an OCI bundle, run by each runtime CLI directly.
runtime_floors "$work/busybox.tar"
for rt in "${floors[@]}"; do engines+=("$rt"); cmd[$rt]="$work/$rt-run"; done

# docker: a private dockerd over a private containerd, never the host's (common.sh).
if [ "${DOCKER:-1}" = 1 ] && command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  pids_to_stop=()
  peer_up=0
  start_docker_peer "$work/d" && peer_up=1
  containerd_pid=${ctr_pid:-}
  D="docker -H unix://$work/d/docker.sock"
  if [ "$peer_up" = 1 ] && $D import "$work/busybox.tar" busybox:latest >/dev/null 2>&1; then
    engines+=(docker); cmd[docker]="$D run --rm --network none busybox true"
    docker_version=$($D version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
  else
    echo "note: the private dockerd did not come up; docker left out (see $work/d/dockerd.log)" >&2
  fi
fi
if [ "${PODMAN:-1}" = 1 ] && command -v podman >/dev/null; then
  if podman import "$work/busybox.tar" busybox:latest >/dev/null 2>&1; then
    engines+=(podman); cmd[podman]="podman run --rm --network none busybox true"
  fi
fi

if [ "${LOAD:-0}" -gt 0 ]; then
  for i in $(seq "$LOAD"); do "$BERTH" run -d --network none --name "load$i" busybox sleep 100000 >/dev/null; done
  echo "(with $LOAD berth containers running, --network none)"
fi

# The interleaved rounds (two warm-up rounds not counted), then medians and ratios.
spec_file=$work/engines.json
{
  printf '['
  first=1
  for e in "${engines[@]}"; do
    [ $first = 1 ] || printf ','
    first=0
    python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "cmd": sys.argv[2]}), end="")' "$e" "${cmd[$e]}"
  done
  printf ']'
} > "$spec_file"
python3 - "$spec_file" "$RUNS" "$trace_file" <<'PY'
import json, os, shlex, statistics, subprocess, sys, time
engines = json.load(open(sys.argv[1])); runs = int(sys.argv[2]); trace = sys.argv[3]
times = {e["name"]: [] for e in engines}
def once(e, mark):
    t0 = time.time_ns()
    if mark and trace:
        with open(trace, "a") as f: f.write(f"{t0} 0 cli cli.begin\n")
    r = subprocess.run(shlex.split(e["cmd"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t1 = time.time_ns()
    if mark and trace:
        with open(trace, "a") as f: f.write(f"{t1} 0 cli cli.end\n")
    if r.returncode != 0:
        sys.exit(f"{e['name']}: `{e['cmd']}` failed with {r.returncode}")
    return (t1 - t0) / 1e6
for rnd in range(runs + 2):
    k = rnd % len(engines)
    for e in engines[k:] + engines[:k]:
        ms = once(e, e["name"] == "berth" and rnd >= 2)
        if rnd >= 2:
            times[e["name"]].append(ms)
med = {n: statistics.median(v) for n, v in times.items()}
print(f"run --rm busybox true: median of {runs} interleaved rounds (p10..p90)")
for n, v in times.items():
    q = statistics.quantiles(v, n=10) if len(v) > 1 else [v[0]] * 9
    print(f"  {n:14s} {med[n]:7.1f} ms   ({q[0]:.1f}..{q[8]:.1f})")
b = med["berth"]
for peer, target in (("crun", "<= 2"), ("runc", None), ("docker", "<= 0.10"), ("podman", None)):
    if peer in med:
        t = f" (target {target})" if target else ""
        print(f"  berth/{peer:8s} = {b / med[peer]:.2f}{t}")
if "berth bridge" in med:
    print(f"  bridge adds     {med['berth bridge'] - b:+.1f} ms")
if "berth unconfined" in med:
    print(f"  seccomp costs   {b - med['berth unconfined']:+.1f} ms")
PY

if [ -n "$trace_file" ]; then
  echo
  echo "where berth's time goes (--network none; median over $RUNS runs of each step, ms):"
  python3 - "$trace_file" <<'PY'
import statistics, sys
ev = [l.split() for l in open(sys.argv[1]) if l.strip()]
ev = sorted((int(t), pid, cid, ph) for t, pid, cid, ph in ev)
runs, cur = [], None
for t, pid, cid, ph in ev:
    if ph == "cli.begin": cur = [(t, ph)]
    elif cur is not None:
        cur.append((t, ph))
        if ph == "cli.end": runs.append(cur); cur = None
steps = {}
order = []
for r in runs:
    for (t0, a), (t1, b) in zip(r, r[1:]):
        k = f"{a} -> {b}"
        if k not in steps: steps[k] = []; order.append(k)
        steps[k].append((t1 - t0) / 1e6)
    steps.setdefault("TOTAL", []).append((r[-1][0] - r[0][0]) / 1e6)
for k in order:
    v = steps[k]
    if len(v) >= len(runs) // 2:
        print(f"  {statistics.median(v):6.2f}  {k}" + ("" if len(v) == len(runs) else f"  ({len(v)}/{len(runs)} runs)"))
print(f"  {statistics.median(steps['TOTAL']):6.2f}  total")
PY
fi

# Memory: MEM_N running containers per engine, then the RSS and PSS of the process that
# stays with each (berth's shim; docker's containerd-shim-runc-v2).
mem_of() { # pids...: prints "n rss_kib pss_kib"
  local rss=0 pss=0 n=0 p
  for p in "$@"; do
    [ -r "/proc/$p/smaps_rollup" ] || continue
    rss=$((rss + $(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup")))
    pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
    n=$((n + 1))
  done
  echo "$n $rss $pss"
}
report_mem() { # label n rss pss
  [ "$2" -gt 0 ] || return 0
  printf '  %-34s RSS %5s MiB   PSS %5s MiB   (%d processes)\n' "$1" \
    "$(awk -v v="$3" -v n="$2" 'BEGIN{printf "%.2f", v/n/1024}')" "$(awk -v v="$4" -v n="$2" 'BEGIN{printf "%.2f", v/n/1024}')" "$2"
}
echo
echo "per running container, over $MEM_N running (targets: RSS <= 1.5 MiB, PSS <= 0.3 MiB):"
for i in $(seq "$MEM_N"); do "$BERTH" run -d --network none --name "mem$i" busybox sleep 300 >/dev/null; done
sleep 0.5
# The process that stays with a container is its init's parent (the shim, or the monitor
# it became).
ppid_of() { awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$1/stat" 2>/dev/null || true; }
shims=$(for i in $(seq "$MEM_N"); do ppid_of "$("$BERTH" inspect -f '{{.State.Pid}}' "mem$i")"; done)
shim_exe=$(for p in $shims; do readlink "/proc/$p/exe"; done | xargs -r -n1 basename | sort | uniq -c | tr '\n' ' ')
read -r n rss pss <<<"$(mem_of $shims)"
report_mem "berth shim ($shim_exe)" "$n" "$rss" "$pss"
daemon_rss_busy=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/$daemon_pid/status)
if [[ " ${engines[*]} " == *" docker "* ]]; then
  for i in $(seq "$MEM_N"); do $D run -d --network none busybox sleep 300 >/dev/null; done
  sleep 0.5
  dshims=$(for p in $(pgrep -f containerd-shim || true); do
    if tr "\0" " " < "/proc/$p/cmdline" 2>/dev/null | grep -q "$work/d/containerd.sock"; then echo "$p"; fi; done)
  read -r n rss pss <<<"$(mem_of $dshims)"
  report_mem "docker containerd-shim-runc-v2" "$n" "$rss" "$pss"
  for id in $($D ps -q); do $D rm -f "$id" >/dev/null 2>&1; done
fi
for i in $(seq "$MEM_N"); do "$BERTH" rm -f "mem$i" >/dev/null; done
sleep 1
echo
printf 'berth daemon RSS: %s MiB idle after start, %s MiB settled (target <= 15), %s MiB with %d running, %s MiB after they were removed (target < 20)\n' \
  "$daemon_rss_idle" "$daemon_rss_settled" "$daemon_rss_busy" "$MEM_N" "$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/$daemon_pid/status)"
[ -n "${docker_version:-}" ] && echo "(docker: dockerd $docker_version with containerd $(containerd --version | awk '{print $3}'))"
exit 0
