#!/usr/bin/env bash
# tools/bench.d/volume-fio.sh - block-volume benchmark (run as `tools/bench volume`).
#
# For kmsfs and gocryptfs in the same run, with interleaved repetitions: a
# fresh encrypted directory, mounted as tools/bench mounts it; a sparse
# 1 GiB disk image on the mount, attached as a loop device (kmsfs: `kmsfs
# volume create --mkfs ext4` + `kmsfs volume attach --mount`; gocryptfs:
# truncate, losetup, mkfs.ext4, mount - the same loop settings); ext4 on
# it; then fio on a 512 MiB file inside the ext4:
#   randread    4 KiB random reads  (libaio, direct=1, iodepth 32, 2 jobs)
#   randwrite   4 KiB random writes (the same; the final fsync is inside
#               fio's runtime, so data still in the page cache is paid for)
# and both again with the loop device switched to direct I/O (losetup
# --direct-io=on): then no page cache sits between the loop device and the
# FUSE filesystem, and every 4 KiB request is a round trip to its daemon.
# Before each fio run the page cache is dropped and the image's backing
# (cipher) file read once, so both start with the ciphertext in memory and
# an empty cache above it: this measures loop device + FUSE + crypto, not
# the VM's disk. direct=1 bypasses ext4's page cache, not the cache of the
# image file on the FUSE mount, which the loop device reads through (as
# losetup's default, buffered, does; `kmsfs volume attach` is the same).
# Results: IOPS medians per target and the kmsfs/gocryptfs ratio (>1.0 =
# kmsfs faster) in WORK/volume/results.md (raw: results.tsv).
#
# Usage: tools/bench volume [--reps N] [--runtime SEC] [--image-size SIZE]
#                           [--file-size SIZE] [--jobs N] [--iodepth N]
#                           [--workdir DIR] [--kmsfs BIN] [--kmsfs-opts OPTS]
#                           [--quick]
# Run as root (loop devices, mounts, drop_caches). The default run (3 reps,
# 25 s per fio run) takes about 13 minutes on 2 cores.
set -euo pipefail

PROG="bench volume"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGETS=(kmsfs gocryptfs)
REPS=3
RUNTIME=25
IMAGE_SIZE=1G
FILE_SIZE=512M
JOBS=2
IODEPTH=32
WORK=/var/tmp/kmsfs-bench
KMSFS_BIN=""
KMSFS_OPTS=""
MOUNT_TIMEOUT=120
QUICK=0

die() { echo "$PROG: error: $*" >&2; exit 1; }
warn() { echo "$PROG: warning: $*" >&2; }
log() { printf '%s [%s] %s\n' "$PROG" "$(date +%H:%M:%S)" "$*" >&2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--reps) REPS=${2:?--reps needs a value}; shift 2 ;;
	--runtime) RUNTIME=${2:?--runtime needs a value}; shift 2 ;;
	--image-size) IMAGE_SIZE=${2:?--image-size needs a value}; shift 2 ;;
	--file-size) FILE_SIZE=${2:?--file-size needs a value}; shift 2 ;;
	--jobs) JOBS=${2:?--jobs needs a value}; shift 2 ;;
	--iodepth) IODEPTH=${2:?--iodepth needs a value}; shift 2 ;;
	--workdir) WORK=${2:?--workdir needs a value}; shift 2 ;;
	--kmsfs) KMSFS_BIN=${2:?--kmsfs needs a value}; shift 2 ;;
	--kmsfs-opts) KMSFS_OPTS=${2?--kmsfs-opts needs a value}; shift 2 ;;
	--quick) QUICK=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see tools/bench volume --help)" ;;
	esac
done
if [ "$QUICK" = 1 ]; then
	REPS=1 RUNTIME=3 IMAGE_SIZE=256M FILE_SIZE=64M
fi
for n in "$REPS" "$RUNTIME" "$JOBS" "$IODEPTH"; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "--reps, --runtime, --jobs and --iodepth take positive integers, got '$n'"
done
IMAGE_BYTES=$(numfmt --from=iec "$IMAGE_SIZE" 2>/dev/null) || die "bad --image-size '$IMAGE_SIZE'"
FILE_BYTES=$(numfmt --from=iec "$FILE_SIZE" 2>/dev/null) || die "bad --file-size '$FILE_SIZE'"
[ "$FILE_BYTES" -le $((IMAGE_BYTES * 3 / 4)) ] || die "--file-size must fit in the ext4 on --image-size (at most 3/4 of it)"

[ "$(id -u)" -eq 0 ] || die "run as root (loop devices, mounts, drop_caches)"
for t in fio gocryptfs mkfs.ext4 losetup mountpoint numfmt; do
	command -v "$t" >/dev/null || die "'$t' is not installed (tools/install-deps.sh --bench installs it)"
done
PY=/usr/bin/python3
[ -x "$PY" ] || die "python3 not found at $PY (needed for fio parsing and the report)"

WORK=$(realpath -m "$WORK")
OUT="$WORK/volume"
RUN="$OUT/run"
RESULTS="$OUT/results.tsv"
mkdir -p "$OUT/logs"
case "$(stat -f -c %T "$WORK")" in tmpfs | ramfs) die "--workdir $WORK is on tmpfs; use a real disk" ;; esac
grep -qs " $RUN/" /proc/mounts && die "something is still mounted under $RUN (previous run?); unmount it first"

# ---------------------------------------------------------------- kmsfs build
if [ -z "$KMSFS_BIN" ]; then
	BUILD="$REPO/build-bench"
	log "building kmsfs (Release) in $BUILD"
	cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >"$OUT/build.log" 2>&1 ||
		die "cmake configure failed (log: $OUT/build.log)"
	cmake --build "$BUILD" -j "$(nproc)" --target kmsfs >>"$OUT/build.log" 2>&1 ||
		die "cmake build failed (log: $OUT/build.log)"
	KMSFS_BIN="$BUILD/tools/kmsfs"
fi
KMSFS_BIN=$(realpath -m "$KMSFS_BIN")
[ -x "$KMSFS_BIN" ] || die "$KMSFS_BIN: not an executable"
KMSFS_COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD -- fs crypto keyclient tools 2>/dev/null || KMSFS_COMMIT="$KMSFS_COMMIT+dirty"

PASSFILE="$OUT/passphrase"
(umask 077 && head -c 24 /dev/urandom | base64 >"$PASSFILE")

# ---------------------------------------------------------------- targets
# Per target: $RUN/<t>/{cipher,mnt,ext4,keystore}, made afresh each rep.
tdir() { echo "$RUN/$1"; }
tlog() { echo "$OUT/logs/$1.log"; }

# Loop devices whose image is below $RUN/<t>.
loops_of() {
	local f
	for f in /sys/block/loop*/loop/backing_file; do
		[ -r "$f" ] || continue
		case "$(cat "$f" 2>/dev/null)" in "$(tdir "$1")/"*) echo "/dev/$(basename "$(dirname "$(dirname "$f")")")" ;; esac
	done
}

teardown() { # target: whatever state it is in
	local t=$1 d dev
	d=$(tdir "$t")
	if mountpoint -q "$d/ext4" 2>/dev/null; then umount "$d/ext4" || umount -l "$d/ext4" || true; fi
	for dev in $(loops_of "$t"); do losetup -d "$dev" || warn "cannot detach $dev"; done
	if mountpoint -q "$d/mnt" 2>/dev/null; then
		fusermount3 -u "$d/mnt" 2>/dev/null || umount -l "$d/mnt" 2>/dev/null || warn "cannot unmount $d/mnt"
	fi
	for _ in $(seq 1 50); do
		pgrep -f -- "$d/cipher" >/dev/null || return 0
		sleep 0.1
	done
	warn "$t: daemon still running 5 s after unmount"
}

cleanup_all() { for t in "${TARGETS[@]}"; do teardown "$t"; done; }
trap cleanup_all EXIT
trap 'trap - INT TERM; warn "interrupted; cleaning up"; cleanup_all; exit 130' INT TERM

wait_mounted() {
	for _ in $(seq 1 300); do
		mountpoint -q "$1" && return 0
		sleep 0.1
	done
	return 1
}

# One setup step, its output in the target's log; on failure the log's tail and why.
step() { # log command...
	local L=$1
	shift
	"$@" >>"$L" 2>&1 && return 0
	tail -5 "$L" >&2
	warn "failed: $* (log: $L)"
	return 1
}

# A fresh encrypted directory, mounted; a 1 GiB image with ext4 on it, mounted on ext4/.
setup() { # target
	local t=$1 d L dev
	d=$(tdir "$t")
	L=$(tlog "$t")
	teardown "$t"
	rm -rf --one-file-system "$d"
	mkdir -p "$d/cipher" "$d/mnt" "$d/ext4"
	case "$t" in
	kmsfs)
		step "$L" timeout "$MOUNT_TIMEOUT" "$KMSFS_BIN" init --keystore "$d/keystore" --passfile "$PASSFILE" "$d/cipher" || return 1
		# shellcheck disable=SC2086  # KMSFS_OPTS is a list of options
		step "$L" timeout "$MOUNT_TIMEOUT" "$KMSFS_BIN" mount $KMSFS_OPTS --keystore "$d/keystore" \
			--passfile "$PASSFILE" "$d/cipher" "$d/mnt" || return 1
		wait_mounted "$d/mnt" || return 1
		step "$L" "$KMSFS_BIN" volume create "$d/mnt/volume.img" --size "$IMAGE_BYTES" --mkfs ext4 || return 1
		step "$L" "$KMSFS_BIN" volume attach "$d/mnt/volume.img" --mount "$d/ext4" || return 1
		;;
	gocryptfs)
		step "$L" timeout "$MOUNT_TIMEOUT" gocryptfs -init -q -passfile "$PASSFILE" "$d/cipher" || return 1
		step "$L" timeout "$MOUNT_TIMEOUT" gocryptfs -q -nosyslog -passfile "$PASSFILE" "$d/cipher" "$d/mnt" || return 1
		wait_mounted "$d/mnt" || return 1
		step "$L" truncate -s "$IMAGE_BYTES" "$d/mnt/volume.img" || return 1
		dev=$(losetup --find --show "$d/mnt/volume.img") || { warn "losetup of $d/mnt/volume.img failed"; return 1; }
		step "$L" mkfs.ext4 -q -F "$dev" || return 1
		step "$L" mount "$dev" "$d/ext4" || return 1
		;;
	esac
	mountpoint -q "$d/ext4" || { warn "$t: ext4 is not mounted on $d/ext4"; return 1; }
	# The fio file, written once (untimed) so randread reads real, encrypted data.
	step "$L" fio --name=layout --filename="$d/ext4/fio.dat" --size="$FILE_BYTES" --rw=write --bs=1M \
		--direct=1 --ioengine=libaio --iodepth=8 --end_fsync=1 --output=/dev/null
}

# Empty page cache, then the ciphertext read once into it.
prepare_cache() { # target
	local d
	d=$(tdir "$1")
	sync
	echo 3 >/proc/sys/vm/drop_caches
	find "$d/cipher" -type f -size +1M -exec cat {} + >/dev/null
}

run_fio() { # rep target rw [name]
	local rep=$1 t=$2 rw=$3 name=${4:-$3} d out iops
	d=$(tdir "$t")
	out="$OUT/logs/fio-$t-$name-$rep.json"
	prepare_cache "$t"
	fio --name="$name" --filename="$d/ext4/fio.dat" --size="$FILE_BYTES" --rw="$rw" --bs=4k \
		--ioengine=libaio --direct=1 --iodepth="$IODEPTH" --numjobs="$JOBS" --group_reporting \
		--time_based --runtime="$RUNTIME" --end_fsync=1 --output-format=json --output="$out" ||
		{ warn "$t: fio $rw failed (output: $out)"; return 1; }
	iops=$("$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
if j.get("error"): sys.exit("fio job error %s" % j["error"])
print("%.0f" % j["read" if sys.argv[2] == "randread" else "write"]["iops"])' "$out" "$rw") ||
		{ warn "$t: cannot parse $out"; return 1; }
	printf '%s\t%s\t%s\t%s\n' "$rep" "$t" "$name" "$iops" >>"$RESULTS"
	log "  $t rep $rep: $name = $iops IOPS"
}

bench_target() { # rep target
	local dev
	log "rep $1/$REPS: $2"
	setup "$2" || { warn "$2: setup failed (log: $(tlog "$2"))"; return 1; }
	run_fio "$1" "$2" randread || return 1
	run_fio "$1" "$2" randwrite || return 1
	dev=$(loops_of "$2")
	losetup --direct-io=on "$dev" || { warn "$2: losetup --direct-io=on $dev failed"; return 1; }
	run_fio "$1" "$2" randread randread_dio || return 1
	run_fio "$1" "$2" randwrite randwrite_dio || return 1
	teardown "$2"
}

# ---------------------------------------------------------------- main
: >"$RESULTS"
ver() { "$@" 2>&1 | head -1 || true; }
META="date=$(date -u +%Y-%m-%dT%H:%M:%SZ)|cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')|cores=$(nproc)"
META="$META|mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)|kernel=$(uname -r)"
META="$META|backing=$(df --output=fstype "$WORK" | tail -1)|kmsfs=git $KMSFS_COMMIT${KMSFS_OPTS:+ (mount $KMSFS_OPTS)}"
META="$META|gocryptfs=$(ver gocryptfs -version | cut -d';' -f1)|fio=$(ver fio --version)"
META="$META|settings=$REPS interleaved rep(s), medians; image $IMAGE_SIZE, fio file $FILE_SIZE, 4 KiB, libaio, direct=1, iodepth $IODEPTH, $JOBS job(s), ${RUNTIME} s per run"
log "targets: ${TARGETS[*]}; $REPS rep(s); fio ${RUNTIME}s; workdir $OUT"
failed=0
for ((rep = 1; rep <= REPS; rep++)); do
	for ((i = 0; i < ${#TARGETS[@]}; i++)); do
		t=${TARGETS[$(((i + rep - 1) % ${#TARGETS[@]}))]}
		if ! bench_target "$rep" "$t"; then
			warn "$t rep $rep failed; its missing values show as -"
			failed=$((failed + 1))
			teardown "$t"
		fi
	done
done
trap - EXIT
cleanup_all
rm -rf --one-file-system "$RUN"

"$PY" - "$RESULTS" "$META" "$OUT/results.md" <<'EOF'
import statistics, sys
tsv, meta, out = sys.argv[1:4]
m = dict(kv.split("=", 1) for kv in meta.split("|"))
vals = {}
for line in open(tsv):
    rep, target, wl, v = line.rstrip("\n").split("\t")
    vals.setdefault((wl, target), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
fmt = lambda v: "-" if v is None else f"{v:,.0f}"
lines = [
    f"kmsfs volume benchmark, {m['date']}: {m['cpu']}, {m['cores']} cores, {m['mem']} RAM, "
    f"kernel {m['kernel']}, backing fs {m['backing']}.",
    f"ext4 on a loop device on a sparse image in each encrypted mount; {m['settings']}.",
    f"Versions: kmsfs {m['kmsfs']}, {m['gocryptfs']}, {m['fio']}.",
    "",
    "| workload (ext4 on a volume) | unit | kmsfs | gocryptfs | kmsfs/gocryptfs |",
    "|---|---|---:|---:|---:|",
]
for wl, name in (("randread", "fio randread 4k"), ("randwrite", "fio randwrite 4k"),
                 ("randread_dio", "fio randread 4k, loop direct I/O"),
                 ("randwrite_dio", "fio randwrite 4k, loop direct I/O")):
    k, g = med.get((wl, "kmsfs")), med.get((wl, "gocryptfs"))
    ratio = f"{k / g:.2f}" if k and g else "-"
    lines.append(f"| {name} | IOPS | {fmt(k)} | {fmt(g)} | {ratio} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text, end="")
EOF
if [ "$failed" -ne 0 ]; then
	warn "$failed target repetition(s) failed; see $OUT/logs/"
	exit 2
fi
