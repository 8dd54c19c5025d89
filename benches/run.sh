#!/usr/bin/env bash
# Full benchmark run: core_bench once, then db_bench once per engine (a fresh
# process each, after warmmem touches and frees 1 GiB) for 100-byte values (with the
# fillsync runs) and 10,000-byte values, everything twice; then report.py
# writes the Markdown table, the run-to-run differences, the targets and a
# PNG chart.
#
#   benches/run.sh [--quick] [--engines=a,b,...] [--out=DIR] [--dir=SCRATCH]
#                  [--runs=N] [--no-core] [--no-build] [--update-docs]
#
# Default sizes: 1,000,000 keys x 100 B, 50,000 keys x 10,000 B, 20,000 ops
# per fillsync run (fileperkey: 30,000 / 10,000 keys, see below).
# --quick:       100,000 keys x 100 B, 10,000 keys x 10,000 B, 2,000 sync ops.
# Output (default benches/results/, with --quick benches/build/results-quick/):
# results.md, chart.png, run<N>.csv, run<N>.log, core_bench.txt, machine.txt.
# --update-docs also rewrites the results section of docs/BENCHMARKS.md.
# Needs: make, cc, python3; gnuplot (gnuplot-nox) for the chart.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/results"
SCRATCH="${TMPDIR:-/tmp}/bitcask-bench"
QUICK=0
RUNS=2
CORE=1
BUILD=1
ENGINES=""
DOCS=0
OUT_SET=0

for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --engines=*) ENGINES="${arg#*=}" ;;
        --out=*) OUT="${arg#*=}"; OUT_SET=1 ;;
        --dir=*) SCRATCH="${arg#*=}" ;;
        --runs=*) RUNS="${arg#*=}" ;;
        --no-core) CORE=0 ;;
        --no-build) BUILD=0 ;;
        --update-docs) DOCS=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

if [ "$QUICK" = 1 ] && [ "$OUT_SET" = 0 ]; then
    OUT="$HERE/build/results-quick"  # keep smoke runs away from the committed results
fi
if [ "$QUICK" = 1 ]; then
    N_SMALL=100000; N_LARGE=10000; SYNC_OPS=2000; N_FPK=10000; N_FPK_LARGE=5000; CORE_N=100000
else
    N_SMALL=1000000; N_LARGE=50000; SYNC_OPS=20000; N_FPK=30000; N_FPK_LARGE=10000; CORE_N=1000000
fi
# fileperkey creates one file per key (~100-300 us per create here), so it
# runs at fewer keys (N_FPK at 100 B, N_FPK_LARGE at 10,000 B; the table
# marks it) to keep the whole run near 15 minutes; its per-op cost hardly
# depends on the key count.
WARM_MB=1024

BENCH_SMALL="fillseq,fillrandom,overwrite,compact,reopen,readrandom,readmissing,readwhilewriting,deleterandom,fillsync"
BENCH_LARGE="fillseq,fillrandom,overwrite,compact,reopen,readrandom,readmissing,readwhilewriting,deleterandom"

if [ "$BUILD" = 1 ]; then
    make -C "$HERE" --no-print-directory all >/dev/null
fi
# Snapshot libbitcask.so for the whole run: a cargo build during the run
# must not swap the library between engines or runs (the binaries carry a
# RUNPATH to target/release, which LD_LIBRARY_PATH overrides).
LIB="$HERE/../target/release/libbitcask.so"
mkdir -p "$SCRATCH"
if [ -f "$LIB" ]; then
    mkdir -p "$SCRATCH/lib"
    cp "$LIB" "$SCRATCH/lib/"
    export LD_LIBRARY_PATH="$SCRATCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
DB_BENCH="$HERE/build/db_bench"
WARM="$HERE/build/warmmem"
CORE_BENCH="$HERE/build/core_bench"
[ -x "$DB_BENCH" ] || { echo "run.sh: $DB_BENCH missing (make -C benches)" >&2; exit 1; }

if [ -z "$ENGINES" ]; then
    ENGINES="$("$DB_BENCH" --list | awk '$2 != "(not" {print $1}' | paste -sd, -)"
fi
echo "run.sh: engines: $ENGINES"
"$DB_BENCH" --list | awk '$2 == "(not" {print "run.sh: skipped (not compiled in): " $1}'

mkdir -p "$OUT"
rm -f "$OUT"/run*.csv "$OUT"/run*.log
start=$(date +%s)
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

# the machine, for docs/BENCHMARKS.md
{
    echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpus:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "memory:  $(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel:  $(uname -sr)"
    echo "disk:    $(df -hT "$SCRATCH" | awk 'NR==2 {print $1 " " $2 ", " $3 " total"}'), rotational=$(cat /sys/block/"$(basename "$(df "$SCRATCH" | awk 'NR==2 {print $1}')")"/queue/rotational 2>/dev/null || echo ?)"
    echo "cc:      $(cc --version | head -1)"
    if [ -f "$LIB" ]; then
        echo "bitcask: $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git -C "$HERE/.." status --porcelain -- src Cargo.toml 2>/dev/null | grep -q . && echo ' + uncommitted changes in src/'), libbitcask.so sha256 $(sha256sum "$LIB" | cut -c1-12)"
    fi
    echo "sizes:   ${N_SMALL} x 100 B, ${N_LARGE} x 10000 B, fillsync ${SYNC_OPS} ops; fileperkey ${N_FPK} / ${N_FPK_LARGE} keys"
    echo "bitcask: default options (write map); bitcask-wb0: write map off, write buffer 0; bitcask-buf: write map off, write buffer ${BITCASK_WRITE_BUFFER:-256 KiB}"
    if command -v dpkg-query >/dev/null; then
        echo "packages:"
        dpkg-query -W -f='  ${Package} ${Version}\n' liblmdb-dev libleveldb-dev librocksdb-dev libsqlite3-dev \
            libtkrzw-dev libkyotocabinet-dev gnuplot-nox 2>/dev/null || true
    fi
} > "$OUT/machine.txt"

if [ "$CORE" = 1 ] && [ -x "$CORE_BENCH" ]; then
    echo "run.sh: core_bench -n $CORE_N -r 3"
    "$WARM" "$WARM_MB" >/dev/null
    "$CORE_BENCH" -n "$CORE_N" -r 3 -d "$SCRATCH/core" | tee "$OUT/core_bench.txt"
fi

IFS=, read -r -a ENGINE_LIST <<< "$ENGINES"
failed=0
for run in $(seq 1 "$RUNS"); do
    csv="$OUT/run$run.csv"
    log="$OUT/run$run.log"
    for cfg in small large; do
        if [ "$cfg" = small ]; then v=100; n=$N_SMALL; bench=$BENCH_SMALL
        else v=10000; n=$N_LARGE; bench=$BENCH_LARGE; fi
        for e in "${ENGINE_LIST[@]}"; do
            en=$n
            if [ "$e" = fileperkey ]; then
                if [ "$cfg" = small ]; then en=$N_FPK; else en=$N_FPK_LARGE; fi
                [ "$en" -lt "$n" ] || en=$n
            fi
            "$WARM" "$WARM_MB" >/dev/null
            t0=$(date +%s.%N)
            if ! "$DB_BENCH" --engines="$e" -n "$en" -v "$v" --sync-ops="$SYNC_OPS" --benchmarks="$bench" \
                    --warm-mb=0 -d "$SCRATCH/db" --csv="$csv" >> "$log" 2>&1; then
                echo "run.sh: db_bench failed for $e (v=$v), see $log" >&2
                failed=1
            fi
            printf 'run.sh: run %s  %-13s value=%-5s n=%-8s %6.1f s\n' "$run" "$e" "$v" "$en" \
                "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
        done
    done
done
rm -rf "$SCRATCH/db" "$SCRATCH/core" "$SCRATCH/lib"
rmdir "$SCRATCH" 2>/dev/null || true

csvs=()
for run in $(seq 1 "$RUNS"); do csvs+=("$OUT/run$run.csv"); done
core_arg=()
doc_arg=()
[ "$DOCS" = 1 ] && doc_arg=(--doc "$HERE/../docs/BENCHMARKS.md")
[ -f "$OUT/core_bench.txt" ] && [ "$CORE" = 1 ] && core_arg=(--core "$OUT/core_bench.txt")
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load:    1/5/15-min load average $load_start at the start, $load_end at the end" >> "$OUT/machine.txt"
python3 "$HERE/report.py" "${csvs[@]}" --md "$OUT/results.md" --chart "$OUT/chart.png" "${core_arg[@]}" \
    --machine "$OUT/machine.txt" --title "bitcask db_bench" "${doc_arg[@]}"
echo "run.sh: done in $(( $(date +%s) - start )) s; results in $OUT"
exit $failed
