# shellcheck shell=bash
# What the density and memory benches share, sourced by them: the berth binary measured,
# a work directory cleaned up on exit, and the docker peer (Debian's containerd and dockerd
# started by hand with roots of their own, never a dependency of berth).

# bench_berth: BERTH=<path> measures a binary already built; otherwise the release build.
bench_berth() {
  if [ -z "${BERTH:-}" ]; then
    cargo build --release -p berth >&2
    TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    BERTH=$TARGET/release/berth
  fi
}

# bench_workdir PREFIX: makes $work under $TMPDIR (default /tmp: a fresh tmpfs there keeps
# an earlier run's mass removals from slowing this one) and, on exit, removes every
# container of both engines, stops pids_to_stop, unmounts what is left under $work and
# removes it.
bench_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  pids_to_stop=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  set +e
  [ -n "${BERTH_HOST:-}" ] && for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
  [ -n "${DOCKER_HOST:-}" ] && for id in $(docker ps -aq 2>/dev/null); do docker rm -f "$id" >/dev/null 2>&1; done
  for p in "${pids_to_stop[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for m in $(awk -v r="$work" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}

# start_berth_daemon: a berth daemon on roots under $work/b (its pid in berth_pid and
# pids_to_stop, BERTH_HOST set), answering before this returns.
start_berth_daemon() {
  export BERTH_HOST=unix://$work/b/api.sock BERTH_NO_AUTOSTART=1
  mkdir -p "$work/b"
  echo '{}' > "$work/b/daemon.json"
  "$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/b/data" --exec-root "$work/b/run" \
    --config-file "$work/b/daemon.json" >"$work/b/daemon.log" 2>&1 &
  berth_pid=$!
  pids_to_stop+=("$berth_pid")
  for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
}

# The docker peer. start_docker_peer DIR starts both, appends their pids to
# the caller's pids_to_stop (dockerd first, so it stops before containerd), sets
# ctr_pid, dockerd_pid and DOCKER_HOST, and returns non-zero when dockerd does not answer
# (its log's tail on stderr).

start_docker_peer() {
  local d=$1
  mkdir -p "$d"
  cat > "$d/containerd.toml" <<TOML
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
TOML
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
  for _ in $(seq 200); do docker version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "== docker: dockerd did not answer; see $d/dockerd.log" >&2
  tail -5 "$d/dockerd.log" >&2
  return 1
}

# runtime_floors TAR: the bare OCI runtimes as floors. For crun and runc where installed
# and able to run here, an OCI bundle of TAR's rootfs under $work and a script
# $work/<rt>-run that runs `true` in it (`<rt> run`, a fresh container id each time, the
# cgroup /berth-bench/<rt>); sets floors=(those runtimes). crun 1.8 refuses a hybrid cgroup
# host while cgroup2 holds a controller; on this kind of machine that is hugetlb, so hugetlb
# gets a v1 hierarchy of its own at /sys/fs/cgroup/hugetlb when it has none (left mounted:
# harmless for other engines).
runtime_floors() {
  local tar=$1 rt
  floors=()
  if command -v crun >/dev/null && ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo \
    && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null \
    && ! grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.subtree_control 2>/dev/null; then
    mkdir -p /sys/fs/cgroup/hugetlb 2>/dev/null && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null \
      && echo "note: bound hugetlb to a v1 hierarchy at /sys/fs/cgroup/hugetlb (crun needs it on hybrid hosts)" >&2
  fi
  for rt in crun runc; do
    command -v "$rt" >/dev/null || continue
    mkdir -p "$work/$rt-bundle/rootfs"
    tar -C "$work/$rt-bundle/rootfs" -xf "$tar"
    (cd "$work/$rt-bundle" && rm -f config.json && "$rt" spec)
    python3 - "$work/$rt-bundle/config.json" "$rt" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
c["linux"]["cgroupsPath"] = "/berth-bench/" + sys.argv[2]
json.dump(c, open(p, "w"))
PY
    cat > "$work/$rt-run" <<SH
#!/bin/sh
exec $rt run -b "$work/$rt-bundle" "bench-$rt-$$-\$\$"
SH
    chmod +x "$work/$rt-run"
    if "$work/$rt-run" >/dev/null 2>&1; then floors+=("$rt")
    else echo "note: $rt run fails here; left out" >&2; fi
  done
}

# runtime_floors_cleanup: removes the floors' parent cgroups (each run removed its own).
runtime_floors_cleanup() {
  rmdir /sys/fs/cgroup/*/berth-bench /sys/fs/cgroup/unified/berth-bench 2>/dev/null || true
}
