#!/usr/bin/env bash
# Blob throughput and memory of `berth registry serve`, side by side with Debian's
# docker-registry (distribution 2.8) where installed, both on 127.0.0.1.
#
#   bench/registry_serve.sh [MIB]      (default 1024 MiB; run as root or not)
#
# For a blob of MIB MiB of random bytes, with curl as the client, each server:
#   put     POST an upload, then PUT ?digest= with the whole body
#   patch   POST, one streamed PATCH (chunked encoding), then PUT ?digest=
#   get     GET the blob to /dev/null
# and the server's peak RSS (VmHWM) at the end. Throughputs in MiB/s (median of 3).
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}

# BERTH_BIN=path/to/berth skips the release build.
if [ -z "${BERTH_BIN:-}" ]; then cargo build --release -p berth >&2; fi
BERTH=${BERTH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/berth}

work=$(mktemp -d /tmp/bregbench.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

head -c "$((MIB << 20))" /dev/urandom > "$work/blob"
digest=sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# bench NAME HOST PID: prints a result line for the server at HOST.
bench() {
  local name=$1 host=$2 pid=$3 repo=bench/$1 t0 t1 loc put=() patch=() get=()
  secs() { awk -v a="$1" -v b="$2" -v m="$MIB" 'BEGIN { printf "%.0f", m / ((b - a) / 1e9) }'; }
  for i in 1 2 3; do
    loc=$(curl -sS -i -X POST "http://$host/v2/$repo/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
    case $loc in http*) ;; *) loc=http://$host$loc ;; esac
    sep='?'; case $loc in *\?*) sep='&' ;; esac
    t0=$(date +%s%N)
    curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$work/blob" "$loc${sep}digest=$digest"
    t1=$(date +%s%N); put+=("$(secs "$t0" "$t1")")
    curl -sS -o /dev/null -X DELETE "http://$host/v2/$repo/blobs/$digest"

    loc=$(curl -sS -i -X POST "http://$host/v2/$repo/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
    case $loc in http*) ;; *) loc=http://$host$loc ;; esac
    t0=$(date +%s%N)
    loc=$(curl -sS -f -i -X PATCH -H 'Content-Type: application/octet-stream' -T - "$loc" < "$work/blob" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
    case $loc in http*) ;; *) loc=http://$host$loc ;; esac
    sep='?'; case $loc in *\?*) sep='&' ;; esac
    curl -sS -f -o /dev/null -X PUT "$loc${sep}digest=$digest"
    t1=$(date +%s%N); patch+=("$(secs "$t0" "$t1")")

    t0=$(date +%s%N)
    curl -sS -f -o /dev/null "http://$host/v2/$repo/blobs/$digest"
    t1=$(date +%s%N); get+=("$(secs "$t0" "$t1")")
    [ "$i" = 3 ] || curl -sS -o /dev/null -X DELETE "http://$host/v2/$repo/blobs/$digest"
  done
  med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
  rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  printf '%-16s %8s %8s %8s %10s\n' "$name" "$(med "${put[@]}")" "$(med "${patch[@]}")" "$(med "${get[@]}")" "$rss"
}

printf '%s MiB blob; MiB/s, median of 3\n' "$MIB"
printf '%-16s %8s %8s %8s %10s\n' server put patch get "peak RSS MiB"

"$BERTH" registry serve --addr 127.0.0.1:0 --root "$work/berth" 2>"$work/berth.log" &
pids+=($!)
for _ in $(seq 100); do grep -q 'listening on' "$work/berth.log" && break; sleep 0.1; done
host=$(grep -o 'listening on http://[^ ]*' "$work/berth.log" | sed 's|.*http://||')
bench berth "$host" "${pids[-1]}"

if command -v docker-registry >/dev/null; then
  port=$(free_port)
  cat > "$work/dist.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $work/dist}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port}
EOF
  docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  bench docker-registry "127.0.0.1:$port" "${pids[-1]}"
else
  echo "docker-registry: not installed (Debian package docker-registry)"
fi
