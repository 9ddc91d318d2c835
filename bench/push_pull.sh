#!/usr/bin/env bash
# Push and pull throughput against a registry on 127.0.0.1, side by side with docker and
# podman where they are installed and answer.
#
#   bench/push_pull.sh            (run as root; BERTH=path/to/berth to use another build)
#
# The image: busybox plus 200 MiB in 3 layers of incompressible data (urandom) and one of
# text. berth builds it in a fresh data root, pushes it to Debian's docker-registry
# (distribution 2.8) and pulls it into another fresh data root; then the same against
# `berth registry serve`. MiB/s counts the image's (uncompressed) bytes over the wall time of
# the command, compression and unpacking included. docker (and podman) pull the image berth
# pushed to docker-registry and push it to a second one. Then a re-push of
# the unchanged image and a re-pull of an image whose layers are all present must transfer
# no layer bytes (checked from the progress lines and the registry's storage size).
# Targets (issue 10): push ≥ 180 MiB/s, pull ≥ 300 MiB/s (docker here: 89 / 148, podman 187 / 221).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "needs Debian's docker-registry" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  cargo build --release -p berth >&2
  BERTH=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi

work=$(mktemp -d /tmp/bpushpull.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p"; wait "$p"; done 2>/dev/null
  # Registries are started inside $(…), so their pids come back through files.
  for f in "$work"/*/registry.pid; do [ -f "$f" ] && kill "$(cat "$f")"; done 2>/dev/null
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() { # $1 name -> prints port
  local port dir=$work/$1
  port=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/store
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  echo $! > "$dir/registry.pid"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  echo "$port"
}

start_daemon() { # $1 name
  echo '{}' > "$work/$1.json"
  "$BERTH" daemon -H "unix://$work/$1.sock" --data-root "$work/$1" --exec-root "$work/$1-run" \
    --config-file "$work/$1.json" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do BERTH_HOST=unix://$work/$1.sock "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
}

b() { local d=$1; shift; BERTH_HOST=unix://$work/$d.sock BERTH_NO_AUTOSTART=1 DOCKER_CONFIG=$work/cfg "$BERTH" "$@"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
rate() { awk -v mib="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", mib / s; else print "n/a" }'; }

start_berth_registry() { # $1 name -> prints port
  local port dir=$work/$1
  port=$(free_port)
  mkdir -p "$dir"
  "$BERTH" registry serve --addr "127.0.0.1:$port" --root "$dir/store" >"$dir/log" 2>&1 &
  echo $! > "$dir/registry.pid"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  echo "$port"
}

echo "load: $(uptime | sed 's/.*load average: //') (2 cores shared: compare ratios, not absolutes)"
scripts/mkbusybox > "$work/busybox.tar"
mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<'DF'
FROM busybox:latest
RUN head -c 64m /dev/urandom > /r1
RUN head -c 64m /dev/urandom > /r2
RUN head -c 64m /dev/urandom > /r3
RUN seq 1 1100000 > /text
DF
printf '%-16s %10s %10s %12s %12s\n' engine "push MiB/s" "pull MiB/s" "re-push s" "re-pull s"

# berth against one registry: a fresh pushing data root builds the image (so the push pays
# for compressing its layers), a second fresh data root pulls it.
berth_run() { # $1 label, $2 registry storage dir, $3 registry host:port
  local label=$1 store=$2 r=$3 key=${1//\//-}
  local p=$key-push q=$key-pull
  start_daemon "$p"
  start_daemon "$q"
  b "$p" import "$work/busybox.tar" busybox:latest >/dev/null
  b "$p" build -q -t "$r/bench/img:1" "$work/ctx" >/dev/null
  mib=$(b "$p" image inspect --format '{{.Size}}' "$r/bench/img:1" | awk '{ printf "%.1f", $1 / 1048576 }')
  local t0 t1 push_s repush_s pull_s repull_s store1 store2 pushed_again pulled_again
  t0=$(date +%s%N); b "$p" push "$r/bench/img:1" > "$work/$key-push1.out"; t1=$(date +%s%N)
  push_s=$(secs "$t0" "$t1")
  store1=$(du -sb "$store" | cut -f1)
  t0=$(date +%s%N); b "$p" push "$r/bench/img:1" > "$work/$key-push2.out"; t1=$(date +%s%N)
  repush_s=$(secs "$t0" "$t1")
  store2=$(du -sb "$store" | cut -f1)
  pushed_again=$(grep -c ': Pushed$' "$work/$key-push2.out" || true)
  t0=$(date +%s%N); b "$q" pull "$r/bench/img:1" > "$work/$key-pull1.out"; t1=$(date +%s%N)
  pull_s=$(secs "$t0" "$t1")
  t0=$(date +%s%N); b "$q" pull "$r/bench/img:1" > "$work/$key-pull2.out"; t1=$(date +%s%N)
  repull_s=$(secs "$t0" "$t1")
  pulled_again=$(grep -c 'Pull complete' "$work/$key-pull2.out" || true)
  printf '%-16s %10s %10s %12s %12s\n' "$label" "$(rate "$mib" "$push_s")" "$(rate "$mib" "$pull_s")" "$repush_s" "$repull_s"
  echo "  image: $mib MiB in 5 layers (busybox + 3 × 64 MiB urandom + text)"
  echo "  re-push: $pushed_again layers uploaded, registry storage grew by $((store2 - store1)) bytes"
  echo "  re-pull: $pulled_again layers downloaded"
}

port=$(start_registry reg)
reg=127.0.0.1:$port
berth_run berth/distrib "$work/reg/store" "$reg"
bport=$(start_berth_registry breg)
berth_run berth/berthreg "$work/breg/store" "127.0.0.1:$bport"

peer() { # $1 = docker|podman
  local cli=$1 port2
  port2=$(start_registry "reg-$cli")
  local extra=()
  [ "$cli" = podman ] && extra=(--tls-verify=false)
  t0=$(date +%s%N)
  "$cli" pull "${extra[@]}" -q "$reg/bench/img:1" >/dev/null 2>&1 || { echo "$cli: pull failed (is $reg in its insecure registries?)"; return; }
  t1=$(date +%s%N)
  local pull_s push_s
  pull_s=$(secs "$t0" "$t1")
  "$cli" tag "$reg/bench/img:1" "127.0.0.1:$port2/bench/img:1" >/dev/null
  t0=$(date +%s%N)
  "$cli" push "${extra[@]}" -q "127.0.0.1:$port2/bench/img:1" >/dev/null 2>&1 || { echo "$cli: push failed"; return; }
  t1=$(date +%s%N)
  push_s=$(secs "$t0" "$t1")
  printf '%-16s %10s %10s %12s %12s\n' "$cli/distrib" "$(rate "$mib" "$push_s")" "$(rate "$mib" "$pull_s")" - -
  "$cli" rmi "$reg/bench/img:1" "127.0.0.1:$port2/bench/img:1" >/dev/null 2>&1 || true
}
# Docker: the running daemon if one answers, else Debian's dockerd started here by hand with
# its own roots and socket (no bridge, no iptables), stopped at the end.
if command -v docker >/dev/null && ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null; then
  dockerd --data-root "$work/docker" --exec-root "$work/docker-run" -H "unix://$work/docker.sock" \
    --pidfile "$work/docker.pid" --bridge none --iptables=false --ip6tables=false \
    >"$work/dockerd.log" 2>&1 &
  pids+=($!)
  export DOCKER_HOST=unix://$work/docker.sock
  for _ in $(seq 200); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then peer docker; else echo "docker: not measured (no daemon answers)"; fi
if command -v podman >/dev/null; then peer podman; else echo "podman: not installed"; fi
