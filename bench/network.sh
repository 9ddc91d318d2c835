#!/usr/bin/env bash
# Networking cost and throughput, side by side with docker and podman where they answer.
#
#   bench/network.sh [RUNS]      (default 20 runs each; run as root)
#   BERTH_BIN=/path/to/berth bench/network.sh     (skip the release build)
#   BERTH_BEFORE=/path/to/older/berth bench/network.sh   (also measure an older build, in
#                                                        the same run, for a before/after)
#   BENCH_DOCKERD=1 bench/network.sh   (start containerd and dockerd of our own, with their
#                                       own roots and sockets, when no docker answers)
#
# Start latency, median wall time of RUNS runs of `run --rm busybox true`:
#   none     --network none (a namespace with lo only)
#   bridge   the default bridge and one published port (-p 127.0.0.1::80)
#   both     the default bridge and one port published on both families (-p 80, as the
#            tutorials' `-p 4000:8080`; on a host with IPv6 its v6 side is a proxy process)
# The three are interleaved run by run (none, bridge, both, none, ...), and the engines
# take turns too, so a change of load on the machine weighs on every figure alike. The
# difference is what networking adds (target, issue 9: <= 5 ms; Docker adds ~60 ms,
# Podman ~170 ms on this kind of machine).
# Throughput of a 1 GiB bulk TCP transfer from the host into a container (busybox nc):
#   direct     host -> container address on the bridge
#   published  host -> 127.0.0.1:published port -> (DNAT) container
#   v6         host -> [::1]:published port -> (the container's proxy process) container's
#              IPv4 address; the proxy process's RSS is printed beside docker-proxy's
# Where a bridge start's time goes (berth, from BERTH_TRACE_START): the network's kernel
# work (veth, addresses, routes, port map elements) runs while the shim creates the
# container; "waited" is how long the start then still waited for the network; "teardown"
# is what detaching the network costs `run --rm` after the exit (the veth itself is
# deleted off that path), beside the same step of a --network none run.
# (target: published >= 0.8x direct; Docker's userland proxy is the figure to beat).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -p berth >&2
  BERTH_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi

work=$(mktemp -d /tmp/bnet.XXXXXX)
tag=$(basename "$work" | tr -dc 'a-zA-Z0-9' | tail -c 6)
daemons=()      # "pid:binary:socket" of each berth daemon
dockerd_pid=; containerd_pid=
cleanup() {
  set +e
  for d in "${daemons[@]}"; do
    IFS=: read -r pid bin sock <<<"$d"
    for id in $(BERTH_HOST=unix://$sock "$bin" ps -aq 2>/dev/null); do
      BERTH_HOST=unix://$sock "$bin" rm -f "$id" >/dev/null 2>&1
    done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  if [ -n "$dockerd_pid" ]; then
    docker rm -f bnet-sink >/dev/null 2>&1
    kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null
    ip link del "bd$tag" 2>/dev/null
    # dockerd leaves its iptables rules behind: drop those naming our bridge.
    for t in nat filter; do
      iptables -t "$t" -S 2>/dev/null | grep -- "bd$tag" | sed 's/^-A /-D /' |
        while read -r r; do eval iptables -t "$t" "$r"; done
    done
  fi
  [ -n "$containerd_pid" ] && { kill "$containerd_pid" 2>/dev/null; wait "$containerd_pid" 2>/dev/null; }
  for i in 0 1; do
    nft delete table inet "bench_${tag}_$i" 2>/dev/null
    ip link del "bn${tag}$i" 2>/dev/null
  done
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

scripts/mkbusybox > "$work/busybox.tar"
export BERTH_NO_AUTOSTART=1
# start_berth N BINARY: a daemon of BINARY with its own socket, roots, bridge and table.
start_berth() {
  local n=$1 bin=$2 dir=$work/berth$1
  mkdir -p "$dir"; echo '{}' > "$dir/daemon.json"
  BERTH_TRACE_START=$dir/trace "$bin" daemon -H "unix://$dir/api.sock" --data-root "$dir/data" --exec-root "$dir/run" \
    --config-file "$dir/daemon.json" --bridge "bn${tag}$n" --nft-table "bench_${tag}_$n" >"$dir/daemon.log" 2>&1 &
  daemons+=("$!:$bin:$dir/api.sock")
  for _ in $(seq 100); do BERTH_HOST=unix://$dir/api.sock "$bin" version >/dev/null 2>&1 && break; sleep 0.1; done
  BERTH_HOST=unix://$dir/api.sock "$bin" import "$work/busybox.tar" busybox:latest >/dev/null
}

engines=(); clis=()
start_berth 0 "$BERTH_BIN"
engines+=(berth); clis+=("env BERTH_HOST=unix://$work/berth0/api.sock $BERTH_BIN")
if [ -n "${BERTH_BEFORE:-}" ]; then
  start_berth 1 "$BERTH_BEFORE"
  engines+=(before); clis+=("env BERTH_HOST=unix://$work/berth1/api.sock $BERTH_BEFORE")
fi

if ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; } && [ -n "${BENCH_DOCKERD:-}" ] \
   && command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  mkdir -p "$work/containerd" "$work/docker"
  containerd --root "$work/containerd/root" --state "$work/containerd/state" \
    --address "$work/containerd/sock" >"$work/containerd.log" 2>&1 &
  containerd_pid=$!
  for _ in $(seq 100); do [ -S "$work/containerd/sock" ] && break; sleep 0.1; done
  ip link add "bd$tag" type bridge && ip addr add 10.231.$((RANDOM % 200)).1/24 dev "bd$tag" && ip link set "bd$tag" up
  dockerd --data-root "$work/docker/root" --exec-root "$work/docker/exec" -H "unix://$work/docker/sock" \
    --pidfile "$work/docker/pid" --containerd "$work/containerd/sock" --bridge "bd$tag" \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST=unix://$work/docker/sock
  for _ in $(seq 200); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker image inspect busybox >/dev/null 2>&1 || docker import "$work/busybox.tar" busybox:latest >/dev/null
  engines+=(docker); clis+=(docker)
fi
if command -v podman >/dev/null; then
  podman image inspect busybox >/dev/null 2>&1 || podman import "$work/busybox.tar" busybox:latest >/dev/null 2>&1 || true
  engines+=(podman); clis+=(podman)
fi

# time_us CMD...: wall time of one run in microseconds (empty when it failed).
time_us() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 || return 1
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {if (!NR) {print "n/a"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1000}'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%+.1f", a - b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "start latency, run --rm busybox true, median of $RUNS runs (none, bridge and both interleaved)"
for i in "${!engines[@]}"; do
  : > "$work/none.$i"; : > "$work/bridge.$i"; : > "$work/both.$i"
  # Two warm-ups each.
  for _ in 1 2; do
    ${clis[$i]} run --rm --network none busybox:latest true >/dev/null 2>&1 || true
    ${clis[$i]} run --rm -p 127.0.0.1::80 busybox:latest true >/dev/null 2>&1 || true
    ${clis[$i]} run --rm -p 80 busybox:latest true >/dev/null 2>&1 || true
  done
done
for _ in $(seq "$RUNS"); do
  for i in "${!engines[@]}"; do
    n=$(time_us ${clis[$i]} run --rm --network none busybox:latest true) || n=
    b=$(time_us ${clis[$i]} run --rm -p 127.0.0.1::80 busybox:latest true) || b=
    o=$(time_us ${clis[$i]} run --rm -p 80 busybox:latest true) || o=
    [ -n "$n" ] && echo "$n" >>"$work/none.$i"
    [ -n "$b" ] && echo "$b" >>"$work/bridge.$i"
    [ -n "$o" ] && echo "$o" >>"$work/both.$i"
    # Each run's difference to the none run just before it: a change of load between
    # runs weighs less on the median of these than on the difference of the medians.
    [ -n "$n" ] && [ -n "$b" ] && echo $((b - n)) >>"$work/pbridge.$i"
    [ -n "$n" ] && [ -n "$o" ] && echo $((o - n)) >>"$work/pboth.$i"
  done
done
for i in "${!engines[@]}"; do
  none=$(median <"$work/none.$i"); bridge=$(median <"$work/bridge.$i"); both=$(median <"$work/both.$i")
  printf '  %-7s none %7s ms   bridge+port %7s ms   networking adds %s ms (target <= +5)   both families %7s ms (%s)\n' \
    "${engines[$i]}" "$none" "$bridge" "$(diff_ms "$bridge" "$none")" "$both" "$(diff_ms "$both" "$none")"
  printf '  %-7s paired (median of each run minus the none run before it): bridge+port %s ms   both families %s ms\n' \
    "" "$(touch "$work/pbridge.$i"; median <"$work/pbridge.$i")" "$(touch "$work/pboth.$i"; median <"$work/pboth.$i")"
done

# phases TRACE: medians over the bridge runs (those with a daemon.net_ready line) of the
# network's kernel work, the shim's create, and the wait for the network after the create.
phases() {
  awk '{ t[$3" "$4] = $1; if ($4 == "daemon.net_ready") ids[$3] = 1 }
       END { for (id in ids) {
               p = t[id" daemon.prepared"]; n = t[id" daemon.net_ready"]; s = t[id" daemon.shim_ready"];
               if (p && n && s) { w = n - s; if (w < 0) w = 0; printf "%d %d %d\n", (n - p) / 1e3, (s - p) / 1e3, w / 1e3 } } }' \
    "$1" >"$1.phases"
  if [ ! -s "$1.phases" ]; then echo "  (no bridge starts traced)"; return; fi
  printf '  network kernel work %s ms, shim create %s ms (in parallel), start waited for the network %s ms (medians of %s)\n' \
    "$(cut -d' ' -f1 "$1.phases" | median)" "$(cut -d' ' -f2 "$1.phases" | median)" \
    "$(cut -d' ' -f3 "$1.phases" | median)" "$(wc -l <"$1.phases")"
  # The detach after the exit: bridge runs (with a net_ready line) beside none runs.
  awk '{ t[$3" "$4] = $1; if ($4 == "daemon.net_ready") br[$3] = 1; if ($4 == "daemon.net_detached") ids[$3] = 1 }
       END { for (id in ids) { u = t[id" daemon.unmounted"]; n = t[id" daemon.net_detached"];
               if (u && n) printf "%s %d\n", (id in br) ? "bridge" : "none", (n - u) / 1e3 } }' "$1" >"$1.detach"
  printf '  teardown on the --rm path: bridge %s ms, none %s ms (medians)\n' \
    "$(awk '$1 == "bridge" {print $2}' "$1.detach" | median)" "$(awk '$1 == "none" {print $2}' "$1.detach" | median)"
}
for i in "${!engines[@]}"; do
  case ${engines[$i]} in
    berth) echo "berth bridge start phases:"; phases "$work/berth0/trace" ;;
    before) echo "before bridge start phases:"; phases "$work/berth1/trace" ;;
  esac
done

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
mb() { awk -v s="$1" 'BEGIN { printf "%.0f", 1024 / s }'; }

echo "throughput, 1 GiB host -> container (busybox nc -l)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
B=${clis[0]}
$B run -d --name sink -p "127.0.0.1:$port:80" busybox:latest \
  sh -c 'while true; do nc -l -p 80 > /dev/null; done' >/dev/null
ip=$($B inspect -f '{{.NetworkSettings.IPAddress}}' sink)
sleep 0.3
direct=$(send_gib "$ip" 80)
published=$(send_gib 127.0.0.1 "$port")
$B rm -f sink >/dev/null
printf '  berth   direct %6s MiB/s   published %6s MiB/s   published/direct = %s (target >= 0.8)\n' \
  "$(mb "$direct")" "$(mb "$published")" "$(ratio "$direct" "$published")"
# The IPv6 side of a published port goes through berth's userland proxy (kernel NAT
# cannot turn v6 into v4); only when the host has IPv6.
free6() { python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0)); print(s.getsockname()[1])'; }
has_v6() { grep -q . /proc/net/if_inet6 2>/dev/null && [ "$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6)" != 1 ]; }
if has_v6; then
  port6=$(free6)
  $B run -d --name sink6 -p "[::1]:$port6:80" busybox:latest \
    sh -c 'while true; do nc -l -p 80 > /dev/null; done' >/dev/null
  sleep 0.3
  v6=$(send_gib ::1 "$port6")
  id6=$($B inspect -f '{{.Id}}' sink6)
  rss6=$(awk '/^VmRSS/ {print $2}' "/proc/$(cat "$work/berth0/run/netproxy/$id6.pid" 2>/dev/null)/status" 2>/dev/null || true)
  $B rm -f sink6 >/dev/null
  printf '  berth   v6 via proxy %6s MiB/s   v6/published-v4 = %s   proxy process RSS %s KiB\n' \
    "$(mb "$v6")" "$(ratio "$published" "$v6")" "${rss6:-n/a}"
else
  echo "  v6: the host has no IPv6; not measured"
fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker run -d --name bnet-sink -p "127.0.0.1:$port:80" busybox:latest sh -c 'while true; do nc -l -p 80 > /dev/null; done' >/dev/null
  dip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' bnet-sink); sleep 0.3
  ddirect=$(send_gib "$dip" 80); dpub=$(send_gib 127.0.0.1 "$port")
  docker rm -f bnet-sink >/dev/null
  printf '  docker  direct %6s MiB/s   published %6s MiB/s   published/direct = %s\n' \
    "$(mb "$ddirect")" "$(mb "$dpub")" "$(ratio "$ddirect" "$dpub")"
  if has_v6 && docker run -d --name bnet-sink6 -p "[::1]:$port6:80" busybox:latest \
      sh -c 'while true; do nc -l -p 80 > /dev/null; done' >/dev/null 2>&1; then
    sleep 0.3
    dv6=$(send_gib ::1 "$port6")
    drss=$(for p in $(pgrep -x docker-proxy); do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | sort -n | tail -1)
    printf '  docker  v6 via docker-proxy %6s MiB/s   docker-proxy RSS %s KiB\n' "$(mb "$dv6")" "${drss:-n/a}"
  fi
  docker rm -f bnet-sink6 >/dev/null 2>&1 || true
else
  echo "  docker: no daemon answers here; not measured"
fi
