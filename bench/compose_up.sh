#!/usr/bin/env bash
# `compose up -d` of a 5-service project (one service built from a Dockerfile, four from
# the busybox image), cold (nothing created, image not built) and warm (everything already
# up: nothing to change), and `down`, with `berth compose` against a daemon of its own and,
# where installed, docker compose v2 (`docker-compose` 2.x, or the docker CLI plugin)
# against a private dockerd — interleaved round by round, medians and ratios printed.
#
#   bench/compose_up.sh [RUNS]             (default 5 rounds; run as root)
#   BERTH_BIN=/path/to/berth bench/compose_up.sh   (skip the release build)
#   DOCKER=0                               (leave docker compose out)
#
# A cold round: `up -d` right after `down -v` and the built image removed, so the build
# (from cache-less scratch, one RUN) is part of it. A warm round: `up -d` again. Then
# `down -v`. Each is timed as one command's wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -p berth >&2
  BERTH_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi
BERTH=$BERTH_BIN

work=$(mktemp -d /tmp/bcompose.XXXXXX)
tag=$(basename "$work" | tr -dc 'a-zA-Z0-9' | tail -c 6)
daemon_pid=; dockerd_pid=; containerd_pid=
cleanup() {
  set +e
  if [ -n "$daemon_pid" ]; then
    for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  if [ -n "$dockerd_pid" ]; then
    for id in $(docker -H "unix://$work/docker.sock" ps -aq 2>/dev/null); do
      docker -H "unix://$work/docker.sock" rm -f "$id" >/dev/null 2>&1
    done
    for n in $(docker -H "unix://$work/docker.sock" network ls -q --filter label=com.docker.compose.project 2>/dev/null); do
      docker -H "unix://$work/docker.sock" network rm "$n" >/dev/null 2>&1
    done
    kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null
  fi
  [ -n "$containerd_pid" ] && { kill "$containerd_pid" 2>/dev/null; wait "$containerd_pid" 2>/dev/null; }
  nft delete table inet "bench_$tag" 2>/dev/null
  ip link del "bb$tag" 2>/dev/null
  ip link del "db$tag" 2>/dev/null
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

# The project: one built service and four image services on the default network, one
# named volume, a published port. `init: true` everywhere: busybox as PID 1 ignores
# SIGTERM, and `down` would time the 10 s grace period instead of the engines.
proj=$work/proj
mkdir -p "$proj/app"
cat > "$proj/app/Dockerfile" <<'EOF'
FROM busybox
RUN echo built > /built
CMD ["sleep", "3600"]
EOF
cat > "$proj/compose.yaml" <<EOF
name: bench
services:
  app:
    init: true
    build: ./app
  web:
    init: true
    image: busybox
    command: ["httpd", "-f", "-p", "8080"]
    ports: ["127.0.0.1::8080"]
  worker:
    init: true
    image: busybox
    command: ["sleep", "3600"]
    volumes: [data:/data]
  cache:
    init: true
    image: busybox
    command: ["sleep", "3600"]
  db:
    init: true
    image: busybox
    command: ["sleep", "3600"]
    volumes: [data:/data]
volumes:
  data: {}
EOF

export BERTH_HOST=unix://$work/api.sock BERTH_NO_AUTOSTART=1
echo '{}' > "$work/daemon.json"
"$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/data" --exec-root "$work/run" \
  --config-file "$work/daemon.json" --bridge "bb$tag" --nft-table "bench_$tag" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
scripts/mkbusybox > "$work/busybox.tar"
"$BERTH" import "$work/busybox.tar" busybox:latest >/dev/null

engines=(berth)
declare -A up down clean
up[berth]="$BERTH compose --progress quiet -f $proj/compose.yaml up -d"
down[berth]="$BERTH compose --progress quiet -f $proj/compose.yaml down -v"
clean[berth]="$BERTH rmi -f bench-app"

# docker compose v2 on a private dockerd over a private containerd.
dc=
if docker compose version >/dev/null 2>&1; then dc="docker compose"
elif command -v docker-compose >/dev/null && docker-compose version 2>/dev/null | grep -q 'v2\.'; then dc=docker-compose; fi
if [ "${DOCKER:-1}" = 1 ] && [ -n "$dc" ] && command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  cat > "$work/containerd.toml" <<EOF
version = 2
root = "$work/containerd"
state = "$work/containerd-state"
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
  containerd_pid=$!
  for _ in $(seq 50); do [ -S "$work/containerd.sock" ] && break; sleep 0.1; done
  # Its own bridge; iptables left alone (the published port is reached through the proxy).
  ip link add "db$tag" type bridge 2>/dev/null && ip addr add 10.214.0.1/24 dev "db$tag" && ip link set "db$tag" up
  cat > "$work/docker-daemon.json" <<EOF
{"default-address-pools": [{"base": "10.215.0.0/16", "size": 24}]}
EOF
  dockerd --containerd "$work/containerd.sock" --data-root "$work/docker" --exec-root "$work/docker-run" \
    -H "unix://$work/docker.sock" --pidfile "$work/docker.pid" --bridge "db$tag" --iptables=false \
    --ip6tables=false --ip-masq=false --config-file "$work/docker-daemon.json" \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  D="docker -H unix://$work/docker.sock"
  for _ in $(seq 100); do $D version >/dev/null 2>&1 && break; sleep 0.1; done
  if $D import "$work/busybox.tar" busybox:latest >/dev/null 2>&1; then
    engines+=(docker)
    env_prefix="env DOCKER_HOST=unix://$work/docker.sock DOCKER_BUILDKIT=0 COMPOSE_PROGRESS=quiet"
    up[docker]="$env_prefix $dc -f $proj/compose.yaml up -d"
    down[docker]="$env_prefix $dc -f $proj/compose.yaml down -v"
    clean[docker]="$D rmi -f bench-app"
    peer_version=$($dc version --short 2>/dev/null || echo '?')
  else
    echo "note: the private dockerd did not come up; docker compose left out (see $work/dockerd.log)" >&2
  fi
fi

spec_file=$work/engines.json
{
  printf '['
  first=1
  for e in "${engines[@]}"; do
    [ $first = 1 ] || printf ','
    first=0
    python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "up": sys.argv[2], "down": sys.argv[3], "clean": sys.argv[4]}), end="")' \
      "$e" "${up[$e]}" "${down[$e]}" "${clean[$e]}"
  done
  printf ']'
} > "$spec_file"
[ -n "${peer_version:-}" ] && echo "peer: docker compose $peer_version on dockerd $($D version --format '{{.Server.Version}}' 2>/dev/null)"
python3 - "$spec_file" "$RUNS" <<'PY'
import json, shlex, statistics, subprocess, sys, time
engines = json.load(open(sys.argv[1])); runs = int(sys.argv[2])
def timed(cmd, what):
    t0 = time.monotonic()
    r = subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ms = (time.monotonic() - t0) * 1000
    if r.returncode != 0:
        sys.exit(f"{what}: `{cmd}` failed with {r.returncode}: {r.stderr.decode()[-2000:]}")
    return ms
res = {e["name"]: {"cold": [], "warm": [], "down": []} for e in engines}
for rnd in range(runs + 1):
    k = rnd % len(engines)
    for e in engines[k:] + engines[:k]:
        subprocess.run(shlex.split(e["clean"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cold = timed(e["up"], e["name"] + " cold up")
        warm = timed(e["up"], e["name"] + " warm up")
        dn = timed(e["down"], e["name"] + " down")
        if rnd >= 1:  # the first round warms caches and is not counted
            r = res[e["name"]]
            r["cold"].append(cold); r["warm"].append(warm); r["down"].append(dn)
print(f"compose, 5 services (1 built, 4 images): median of {runs} interleaved rounds, ms")
print(f"  {'engine':8s} {'up cold':>9s} {'up warm':>9s} {'down':>9s}")
med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in res.items()}
for n, m in med.items():
    print(f"  {n:8s} {m['cold']:9.0f} {m['warm']:9.0f} {m['down']:9.0f}")
if "docker" in med:
    b, d = med["berth"], med["docker"]
    print("  berth/docker: " + ", ".join(f"{k} {b[k] / d[k]:.2f}" for k in ("cold", "warm", "down")))
PY
