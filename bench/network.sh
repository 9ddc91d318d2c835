#!/usr/bin/env bash
# Networking cost and throughput, side by side with docker and podman where they answer.
#
#   bench/network.sh [RUNS]      (default 20 runs each; run as root)
#   BERTH_BIN=/path/to/berth bench/network.sh   (skip the release build, e.g. a debug binary)
#
# Start latency, median wall time of RUNS runs of `run --rm busybox true`:
#   none     --network none (a namespace with lo only)
#   bridge   the default bridge and one published port (-p 127.0.0.1::80)
# The difference is what networking adds (target, issue 9: <= 5 ms; Docker adds ~60 ms,
# Podman ~170 ms on this kind of machine).
# Throughput of a 1 GiB bulk TCP transfer from the host into a container (busybox nc):
#   direct     host -> container address on the bridge
#   published  host -> 127.0.0.1:published port -> (DNAT) container
# (target: published >= 0.8x direct; Docker's userland proxy is the figure to beat).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -p berth >&2
  BERTH_BIN=$PWD/target/release/berth
fi
BERTH=$BERTH_BIN

work=$(mktemp -d /tmp/bnet.XXXXXX)
tag=$(basename "$work" | tr -dc 'a-zA-Z0-9' | tail -c 6)
daemon_pid=
cleanup() {
  set +e
  if [ -n "$daemon_pid" ]; then
    for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  nft delete table inet "bench_$tag" 2>/dev/null
  ip link del "bn$tag" 2>/dev/null
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

export BERTH_HOST=unix://$work/api.sock BERTH_NO_AUTOSTART=1
echo '{}' > "$work/daemon.json"
"$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/data" --exec-root "$work/run" \
  --config-file "$work/daemon.json" --bridge "bn$tag" --nft-table "bench_$tag" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
scripts/mkbusybox > "$work/busybox.tar"
"$BERTH" import "$work/busybox.tar" busybox:latest >/dev/null

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
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", a - b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# send_gib HOST PORT: seconds to push 1 GiB to HOST:PORT over one TCP connection.
send_gib() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
buf = b"\0" * (1 << 20)
for _ in range(50):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
t0 = time.time()
for _ in range(1024):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print("%.3f" % (time.time() - t0))
PY
}

echo "start latency, run --rm busybox true, median of $RUNS runs"
for engine in berth docker podman; do
  case $engine in
    berth) cli=("$BERTH") ;;
    docker) command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "  docker: no daemon answers here; not measured"; continue; }
            docker image inspect busybox >/dev/null 2>&1 || docker import "$work/busybox.tar" busybox:latest >/dev/null
            cli=(docker) ;;
    podman) command -v podman >/dev/null || { echo "  podman: not installed; not measured"; continue; }
            podman image inspect busybox >/dev/null 2>&1 || podman import "$work/busybox.tar" busybox:latest >/dev/null 2>&1 || true
            cli=(podman) ;;
  esac
  none=$(median_ms "${cli[@]}" run --rm --network none busybox:latest true)
  bridge=$(median_ms "${cli[@]}" run --rm -p 127.0.0.1::80 busybox:latest true)
  printf '  %-7s none %7s ms   bridge+port %7s ms   networking adds %s ms\n' "$engine" "$none" "$bridge" "$(diff_ms "$bridge" "$none")"
done

echo "throughput, 1 GiB host -> container (busybox nc -l)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BERTH" run -d --name sink -p "127.0.0.1:$port:80" busybox:latest \
  sh -c 'while true; do nc -l -p 80 > /dev/null; done' >/dev/null
ip=$("$BERTH" inspect -f '{{.NetworkSettings.IPAddress}}' sink)
sleep 0.3
direct=$(send_gib "$ip" 80)
published=$(send_gib 127.0.0.1 "$port")
mb() { awk -v s="$1" 'BEGIN { printf "%.0f", 1024 / s }'; }
printf '  berth   direct %6s MiB/s   published %6s MiB/s   published/direct = %s (target >= 0.8)\n' \
  "$(mb "$direct")" "$(mb "$published")" "$(ratio "$direct" "$published")"
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker run -d --name bnet-sink -p "127.0.0.1:$port:80" busybox:latest sh -c 'while true; do nc -l -p 80 > /dev/null; done' >/dev/null
  dip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' bnet-sink); sleep 0.3
  ddirect=$(send_gib "$dip" 80); dpub=$(send_gib 127.0.0.1 "$port")
  docker rm -f bnet-sink >/dev/null
  printf '  docker  direct %6s MiB/s   published %6s MiB/s   published/direct = %s\n' \
    "$(mb "$ddirect")" "$(mb "$dpub")" "$(ratio "$ddirect" "$dpub")"
else
  echo "  docker: no daemon answers here; not measured"
fi
