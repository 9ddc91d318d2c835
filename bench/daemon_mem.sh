#!/usr/bin/env bash
# The daemon's own memory: what an idle daemon keeps resident, with N containers running,
# and after they were removed, for berth and, where installed, a docker peer of our own.
#
#   bench/daemon_mem.sh [N]           (default 20; run as root)
#   DOCKER=0 bench/daemon_mem.sh      (berth only)
#   BERTH=<path> bench/daemon_mem.sh  (measure a binary already built; default: release build)
#   MAPS=1 bench/daemon_mem.sh        (also print berth's largest mappings at each stage)
#
# Stages, each measured after SETTLE seconds (default 7: the daemon trims its heap within
# 5 s of a burst of removals):
#   start      a fresh daemon on an empty data root, nothing asked of it yet
#   image      after `import` of a busybox image and one `run --rm busybox true`
#   N running  after N `run -d busybox sleep` (and a `ps`)
#   removed    after `rm -f` of the N and N more `run --rm busybox true`
# For each stage: RSS (VmRSS) split into anonymous and file-backed pages (RssAnon, RssFile
# from /proc/PID/status), Private_Dirty and PSS (smaps_rollup) and the thread count. For
# docker the figure is dockerd + containerd (the shims are not daemon memory on either side).
# The issue's targets: berth idle <= 15 MiB after start, < 20 MiB after removal.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."
N=${1:-20}
SETTLE=${SETTLE:-7}
DOCKER=${DOCKER:-1}
MAPS=${MAPS:-0}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
bench_berth
bench_workdir bdmem

scripts/mkbusybox > "$work/busybox.tar"

# field PID FILE KEY: the kB value of KEY in /proc/PID/FILE (0 when absent).
field() { awk -v k="$3:" '$1 == k {print $2; f=1} END {if (!f) print 0}' "/proc/$1/$2" 2>/dev/null || echo 0; }

# mem PIDS...: "rss anon file dirty pss threads" summed over PIDS, sizes in kB.
mem() {
  local rss=0 anon=0 file=0 dirty=0 pss=0 thr=0 p
  for p in "$@"; do
    rss=$((rss + $(field "$p" status VmRSS)))
    anon=$((anon + $(field "$p" status RssAnon)))
    file=$((file + $(field "$p" status RssFile) + $(field "$p" status RssShmem)))
    dirty=$((dirty + $(field "$p" smaps_rollup Private_Dirty)))
    pss=$((pss + $(field "$p" smaps_rollup Pss)))
    thr=$((thr + $(field "$p" status Threads)))
  done
  echo "$rss $anon $file $dirty $pss $thr"
}

# maps PID: the ten mappings with the most resident memory, as "rss_kB anon_kB dirty_kB name".
maps() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "") ? "[anon]" : $6; next}
       $1 == "Rss:" {rss[name] += $2} $1 == "Anonymous:" {an[name] += $2}
       $1 == "Private_Dirty:" {pd[name] += $2}
       END {for (n in rss) if (rss[n] > 0) printf "%8d %8d %8d  %s\n", rss[n], an[n], pd[n], n}' \
    "/proc/$1/smaps" | sort -rn | head -10 | sed 's/^/      /'
}

# report LABEL PIDS...
report() {
  local label=$1; shift
  sleep "$SETTLE"
  read -r rss anon file dirty pss thr <<<"$(mem "$@")"
  printf '  %-12s RSS %6.1f MiB (anon %5.1f, file %5.1f)  dirty %5.1f  PSS %6.1f  threads %3d\n' "$label" \
    "$(bc -l <<<"$rss/1024")" "$(bc -l <<<"$anon/1024")" "$(bc -l <<<"$file/1024")" \
    "$(bc -l <<<"$dirty/1024")" "$(bc -l <<<"$pss/1024")" "$thr"
  if [ "$MAPS" = 1 ] && [ "$#" = 1 ]; then
    echo "      rss_kB  anon_kB dirty_kB  mapping"
    maps "$1"
  fi
}

# stages NAME CLI PIDS...: runs the stages against one engine.
stages() {
  local name=$1 cli=$2; shift 2
  echo "== $name"
  report start "$@"
  $cli import "$work/busybox.tar" busybox:latest >/dev/null
  $cli run --rm busybox true
  report image "$@"
  for i in $(seq "$N"); do $cli run -d --name "dmem$i" busybox sleep 86400 >/dev/null; done
  $cli ps >/dev/null
  report "$N running" "$@"
  for i in $(seq "$N"); do $cli rm -f "dmem$i" >/dev/null; done
  for _ in $(seq "$N"); do $cli run --rm busybox true; done
  report removed "$@"
}

echo "load: $(uptime | sed 's/.*load average/load average/')"

# ---- berth -----------------------------------------------------------------------------

start_berth_daemon
berth_cli() { "$BERTH" "$@"; }
stages "berth $("$BERTH" --version 2>/dev/null | head -1) ($(du -m "$BERTH" | cut -f1) MB binary)" berth_cli "$berth_pid"
echo "  target: start <= 15 MiB, removed < 20 MiB"

# ---- docker peer ------------------------------------------------------------------------

if [ "$DOCKER" = 1 ] && command -v dockerd >/dev/null && command -v containerd >/dev/null \
  && command -v docker >/dev/null; then
  d=$work/d
  docker_cli() { docker "$@"; }
  if start_docker_peer "$d"; then
    stages "docker $(dockerd --version | awk '{print $3}' | tr -d ,) (dockerd+containerd)" docker_cli \
      "$dockerd_pid" "$ctr_pid"
  fi
else
  echo "== docker: not measured (DOCKER=0 or dockerd/containerd not installed)"
fi
