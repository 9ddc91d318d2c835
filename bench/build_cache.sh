#!/usr/bin/env bash
# Build speed with the layer cache, side by side with docker where a docker daemon answers.
#
#   bench/build_cache.sh            (run as root)
#
# A context of 2000 small source files and a Dockerfile with a 1 s RUN step, built three
# ways: cold (empty cache), no change, and one file's content changed. berth uses its own
# daemon (release build); docker is Debian's dockerd + containerd, started here with roots of
# their own (bench/common.sh). docker is measured with its legacy builder (DOCKER_BUILDKIT=0):
# BuildKit needs the buildx plugin, which is reported as not measured when missing. The
# 20.10 CLI (Debian's /usr/bin/docker) with DOCKER_BUILDKIT=1 is measured against both
# daemons: berthd serves it BuildKit's API with berth's builder behind it.
# podman (buildah) is measured when installed.
# Targets (issue 3, against BuildKit here: cold 2.0 s, no-change 99 ms, one-file 0.77–0.9 s):
# cold ≤ 0.9×, no-change ≤ 0.5×, one-file ≤ 0.5× of BuildKit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cargo build --release -p berth >&2
BERTH=$PWD/target/release/berth

. bench/common.sh
work=$(mktemp -d /tmp/bbuild.XXXXXX)
daemon_pid=
pids_to_stop=()
cleanup() {
  set +e
  [ -n "$daemon_pid" ] && { kill "$daemon_pid"; wait "$daemon_pid"; } 2>/dev/null
  for p in "${pids_to_stop[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
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

ctx=$work/ctx
mkdir -p "$ctx/src"
for i in $(seq 2000); do printf 'def f%d():\n    return %d\n' "$i" "$i" > "$ctx/src/mod$i.py"; done
echo "numpy==2.1.0" > "$ctx/requirements.txt"
cat > "$ctx/Dockerfile" <<'DF'
FROM busybox:latest
WORKDIR /app
COPY requirements.txt .
RUN sleep 1 && cp requirements.txt installed.txt
COPY src/ ./src/
RUN ls src | wc -l > count.txt
CMD ["cat", "/app/count.txt"]
DF

ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || return 1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Runs the three builds with "$@" as the build command (context path last), each three
# times, and prints the medians: single runs here vary by up to 2x with disk writeback.
three() {
  local c=() n=() o=() t i
  for i in 1 2 3; do
    # --no-cache: docker's legacy builder caches in intermediate images that outlive
    # `builder prune` and `rmi` of the tag, so only this makes its first build cold.
    t=$(ms "$@" --no-cache "$ctx") || return 1; c+=("$t")
    t=$(ms "$@" "$ctx") || return 1; n+=("$t")
    echo "    return 2000 + $i" >> "$ctx/src/mod1000.py"
    t=$(ms "$@" "$ctx") || return 1; o+=("$t")
    printf 'def f1000():\n    return 1000\n' > "$ctx/src/mod1000.py"
  done
  echo "$(median "${c[@]}") $(median "${n[@]}") $(median "${o[@]}")"
}

read -r b_cold b_none b_one < <(three "$BERTH" build -t bench:berth)
echo "build (2000-file context, 1 s RUN step), wall time in ms, median of 3"
printf '  %-18s cold %6s   no-change %6s   one-file %6s\n' berth "$b_cold" "$b_none" "$b_one"

# The 20.10 CLI builds through BuildKit's API (a session and /build?version=2) by itself,
# without buildx: against berthd here, and against dockerd's own BuildKit below.
DOCKER20=/usr/bin/docker
have_docker20() { [ -x "$DOCKER20" ] && "$DOCKER20" --version 2>/dev/null | grep -q 'version 20\.10'; }
if have_docker20; then
  # --network none on both daemons: the peer dockerd runs without its bridge, which its
  # BuildKit would need for RUN steps; these steps need no network.
  if r=$(DOCKER_HOST=$BERTH_HOST DOCKER_BUILDKIT=1 three "$DOCKER20" build --network none -t bench:berth-bk); then
    read -r bk_cold bk_none bk_one <<<"$r"
    printf '  %-18s cold %6s   no-change %6s   one-file %6s\n' "berth (20.10 BK)" "$bk_cold" "$bk_none" "$bk_one"
  fi
fi

if command -v docker >/dev/null && command -v dockerd >/dev/null && command -v containerd >/dev/null \
  && start_docker_peer "$work/d"; then
  docker image inspect busybox:latest >/dev/null 2>&1 || docker import "$work/busybox.tar" busybox:latest >/dev/null
  docker builder prune -af >/dev/null 2>&1 || true
  docker rmi -f bench:docker >/dev/null 2>&1 || true
  if r=$(DOCKER_BUILDKIT=0 three docker build -t bench:docker); then
    read -r d_cold d_none d_one <<<"$r"
    printf '  %-18s cold %6s   no-change %6s   one-file %6s\n' "docker (legacy)" "$d_cold" "$d_none" "$d_one"
    printf '  berth/docker-legacy: cold %s, no-change %s, one-file %s\n' \
      "$(ratio "$b_cold" "$d_cold")" "$(ratio "$b_none" "$d_none")" "$(ratio "$b_one" "$d_one")"
  fi
  if have_docker20 && [ -n "${bk_cold:-}" ]; then
    docker builder prune -af >/dev/null 2>&1 || true
    if r=$(DOCKER_BUILDKIT=1 three "$DOCKER20" build --network none -t bench:docker-bk); then
      read -r dk_cold dk_none dk_one <<<"$r"
      printf '  %-18s cold %6s   no-change %6s   one-file %6s\n' "docker (20.10 BK)" "$dk_cold" "$dk_none" "$dk_one"
      printf '  berth/dockerd, DOCKER_BUILDKIT=1 20.10 CLI: cold %s, no-change %s, one-file %s\n' \
        "$(ratio "$bk_cold" "$dk_cold")" "$(ratio "$bk_none" "$dk_none")" "$(ratio "$bk_one" "$dk_one")"
    fi
  fi
  if docker buildx version >/dev/null 2>&1; then
    docker builder prune -af >/dev/null 2>&1 || true
    if r=$(DOCKER_BUILDKIT=1 three docker build -t bench:buildkit); then
      read -r k_cold k_none k_one <<<"$r"
      printf '  %-18s cold %6s   no-change %6s   one-file %6s\n' "docker (BuildKit)" "$k_cold" "$k_none" "$k_one"
      printf '  berth/BuildKit: cold %s (target <= 0.9), no-change %s (<= 0.5), one-file %s (<= 0.5)\n' \
        "$(ratio "$b_cold" "$k_cold")" "$(ratio "$b_none" "$k_none")" "$(ratio "$b_one" "$k_one")"
    fi
  else
    echo "  docker (BuildKit): the buildx plugin is not installed; not measured"
  fi
else
  echo "  docker: dockerd/containerd not installed or not answering; not measured"
fi
if command -v podman >/dev/null; then
  # No systemd here, and crun refuses this hybrid cgroup host: cgroupfs and runc.
  pm() { podman --cgroup-manager=cgroupfs --runtime runc "$@"; }
  pm image exists localhost/busybox:latest || pm import "$work/busybox.tar" localhost/busybox:latest >/dev/null
  if r=$(three pm build --pull=never -t bench:podman); then
    read -r p_cold p_none p_one <<<"$r"
    printf '  %-18s cold %6s   no-change %6s   one-file %6s\n' podman "$p_cold" "$p_none" "$p_one"
    printf '  berth/podman: cold %s, no-change %s, one-file %s\n' \
      "$(ratio "$b_cold" "$p_cold")" "$(ratio "$b_none" "$p_none")" "$(ratio "$b_one" "$p_one")"
  fi
else
  echo "  podman: not installed; not measured"
fi
