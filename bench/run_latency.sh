#!/usr/bin/env bash
# Container start latency and memory, side by side with the raw runtime floor and, where
# installed and running, docker and podman.
#
#   bench/run_latency.sh [RUNS]      (default 20 runs each; run as root)
#
# Measures, as the median wall time of RUNS runs:
#   berth   `berth run --rm busybox true` against a daemon of its own (release build)
#   floor   `runc run` (or `crun run`) of the same busybox rootfs as a plain OCI bundle
#   docker  `docker run --rm busybox true`   (only if a docker daemon answers)
#   podman  `podman run --rm busybox true`   (only if podman is installed)
# and reports ratios, then the RSS/PSS of the berth shim per running container and the
# idle daemon's RSS. Targets (issue 2): berth ≤ 2× floor, ≤ 0.1× docker; shim ≤ 1.5 MiB
# RSS and ≤ 0.3 MiB PSS; idle daemon ≤ 15 MiB RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cargo build --release -p berth >&2
BERTH=$PWD/target/release/berth

work=$(mktemp -d /tmp/bbench.XXXXXX)
daemon_pid=
cleanup() {
  set +e
  if [ -n "$daemon_pid" ]; then
    for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

export BERTH_HOST=unix://$work/api.sock BERTH_NO_AUTOSTART=1
echo '{}' > "$work/daemon.json"
"$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/data" --exec-root "$work/run" \
  --config-file "$work/daemon.json" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
scripts/mkbusybox > "$work/busybox.tar"
"$BERTH" import "$work/busybox.tar" busybox:latest >/dev/null

# median_ms CMD...: runs CMD RUNS times (after 2 warm-ups), prints the median in ms.
median_ms() {
  local t0 t1 times=()
  "$@" >/dev/null 2>&1 || return 1
  "$@" >/dev/null 2>&1 || return 1
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || return 1; t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1000}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

berth_ms=$(median_ms "$BERTH" run --rm busybox true)

# The raw floor: the same rootfs as a bare OCI bundle run by the runtime CLI directly.
floor_ms=; floor_name=
mkdir -p "$work/bundle/rootfs"
tar -C "$work/bundle/rootfs" -xf "$work/busybox.tar"
for rt in crun runc; do
  command -v "$rt" >/dev/null || continue
  (cd "$work/bundle" && rm -f config.json && "$rt" spec)
  python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
c["linux"]["cgroupsPath"] = "/berth-bench/floor"
json.dump(c, open(p, "w"))
PY
  n=0
  floor_run() { n=$((n + 1)); "$rt" run -b "$work/bundle" "bench-floor-$$-$n"; }
  if ms=$(median_ms floor_run); then floor_ms=$ms; floor_name="$rt run"; break; fi
done

docker_ms=; podman_ms=
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker image inspect busybox >/dev/null 2>&1 || docker import "$work/busybox.tar" busybox:latest >/dev/null
  docker_ms=$(median_ms docker run --rm busybox true || true)
fi
if command -v podman >/dev/null; then
  podman image inspect busybox >/dev/null 2>&1 || podman import "$work/busybox.tar" busybox:latest >/dev/null 2>&1 || true
  podman_ms=$(median_ms podman run --rm busybox true || true)
fi

echo "run --rm busybox true: median of $RUNS runs"
printf '  %-22s %8s ms\n' "berth" "$berth_ms"
[ -n "$floor_ms" ] && printf '  %-22s %8s ms   berth/floor = %s (target <= 2)\n' "$floor_name (floor)" "$floor_ms" "$(ratio "$berth_ms" "$floor_ms")"
[ -n "$docker_ms" ] && printf '  %-22s %8s ms   berth/docker = %s (target <= 0.1)\n' "docker" "$docker_ms" "$(ratio "$berth_ms" "$docker_ms")"
[ -n "$podman_ms" ] && printf '  %-22s %8s ms   berth/podman = %s\n' "podman" "$podman_ms" "$(ratio "$berth_ms" "$podman_ms")"
[ -z "$docker_ms" ] && echo "  docker: no docker daemon answers here; not measured"
[ -z "$podman_ms" ] && echo "  podman: not installed; not measured"

# Memory: five running containers, then the shims' RSS and PSS.
for i in 1 2 3 4 5; do "$BERTH" run -d --name "mem$i" busybox sleep 300 >/dev/null; done
sleep 0.5
rss=0; pss=0; n=0
for p in $(pgrep -f "berth shim" || true); do
  grep -q "$work" "/proc/$p/cmdline" 2>/dev/null || continue
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status")
  s=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")
  rss=$((rss + r)); pss=$((pss + s)); n=$((n + 1))
done
if [ "$n" -gt 0 ]; then
  printf 'shim per running container (%d shims): RSS %s MiB (target <= 1.5), PSS %s MiB (target <= 0.3)\n' "$n" \
    "$(awk -v v=$rss -v n=$n 'BEGIN{printf "%.2f", v/n/1024}')" "$(awk -v v=$pss -v n=$n 'BEGIN{printf "%.2f", v/n/1024}')"
fi
for i in 1 2 3 4 5; do "$BERTH" rm -f "mem$i" >/dev/null; done
sleep 1
printf 'idle daemon: RSS %s MiB (target <= 15)\n' "$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/$daemon_pid/status)"
