#!/usr/bin/env bash
# Compares dagwire's simulator with SimGrid SMPI on the same platform and workload:
# an MPI all-to-all (sizes 8 B .. 64 KiB per pair, powers of two, 10 measured calls
# and 1 warm-up each: 154 calls) on one SimGrid cluster file that both read
# (dagwire through `sim.machine = "platform.xml"`, SMPI through `-platform`). SMPI runs
# its CM02 network model and the `basic_linear` all-to-all (every pair sends directly,
# as dagwire's micro `alltoall` pattern does with the eager strategy).
#
# For each rank count it prints the time each predicts (the sum over sizes of the
# slowest rank's mean measured call, us), their difference,
# and the wall time each took (dagwire with the full trace and with `trace = "counts"`),
# with the speed-up of dagwire over SMPI. Not part of CI (SMPI runs take minutes at
# 128 ranks and more).
#
# Usage: scripts/compare-simgrid.sh [RANKS ...]        (default: 16 32 64 128)
# Needs: SimGrid (installed here with `apt-get install -y simgrid libsimgrid-dev` when
# missing) and the `experiment` binary (built with cargo when missing; set EXPERIMENT
# to use another build).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ranks=("$@")
[ ${#ranks[@]} -gt 0 ] || ranks=(16 32 64 128)

if ! command -v smpicc > /dev/null || ! command -v smpirun > /dev/null; then
    echo "SimGrid is not installed: installing simgrid and libsimgrid-dev" >&2
    apt-get install -y simgrid libsimgrid-dev > /dev/null
fi
experiment="${EXPERIMENT:-}"
if [ -z "$experiment" ]; then
    (cd "$here" && cargo build -q -p dagwire-experiments --bin experiment)
    experiment="$(cd "$here" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/experiment"
fi
[ -x "$experiment" ] || { echo "no experiment binary at $experiment (set EXPERIMENT)" >&2; exit 1; }

work="$(mktemp -d -t dagwire-simgrid-XXXXXX)"
trap 'rm -rf "$work"' EXIT
max=$(printf '%s\n' "${ranks[@]}" | sort -n | tail -1)

# One cluster: 2 us and 12.5 GB/s per link, a backbone that is never the bottleneck.
cat > "$work/platform.xml" <<EOF
<?xml version='1.0'?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<platform version="4.1">
  <cluster id="c" prefix="node-" suffix="" radical="0-$((max - 1))" speed="10Gf"
           bw="12.5GBps" lat="2us" bb_bw="$((max * 25))GBps" bb_lat="0us"/>
</platform>
EOF
for ((i = 0; i < max; i++)); do echo "node-$i"; done > "$work/hosts"

cat > "$work/alltoall.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* 14 sizes x (1 warm-up + 10 measured) all-to-alls; prints the sum over sizes of the
   slowest rank's mean measured call, simulated microseconds. */
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int p, me;
    MPI_Comm_size(MPI_COMM_WORLD, &p);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    size_t max = 65536;
    char *send = malloc(max * p), *recv = malloc(max * p);
    memset(send, me, max * p);
    double sum = 0;
    for (size_t size = 8; size <= max; size *= 2) {
        MPI_Alltoall(send, (int)size, MPI_CHAR, recv, (int)size, MPI_CHAR, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        for (int i = 0; i < 10; i++)
            MPI_Alltoall(send, (int)size, MPI_CHAR, recv, (int)size, MPI_CHAR, MPI_COMM_WORLD);
        double mine = (MPI_Wtime() - start) / 10, slowest;
        MPI_Reduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        sum += slowest;
    }
    if (me == 0) printf("sum_us %.3f\n", sum * 1e6);
    free(send);
    free(recv);
    MPI_Finalize();
    return 0;
}
EOF
smpicc -O2 -o "$work/alltoall" "$work/alltoall.c" 2> /dev/null

sweep() { # NAME RANKS TRACE
    cat > "$work/$1.toml" <<EOF
name = "$1"
seed = 1
[grid]
workload = "micro"
strategy = "eager"
driver = "sim"
ranks = $2
[grid.sim]
machine = "platform.xml"
trace = "$3"
[grid.micro]
pattern = "alltoall"
size = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
iterations = 10
warmup = 1
EOF
}
now() { date +%s.%N; }

printf '%6s | %12s %12s %8s | %9s %9s %9s | %9s %9s\n' ranks "SMPI us" "dagwire us" "diff %" \
    "SMPI wall" "dw full" "dw counts" "x (full)" "x (counts)"
for r in "${ranks[@]}"; do
    t0=$(now)
    smpi=$(smpirun -np "$r" -platform "$work/platform.xml" -hostfile "$work/hosts" \
        --cfg=network/model:CM02 --cfg=smpi/alltoall:basic_linear --log=root.thres:critical \
        "$work/alltoall" 2> /dev/null | sed -n 's/^sum_us //p')
    t1=$(now)
    walls=()
    for trace in full counts; do
        sweep "a2a-$r-$trace" "$r" "$trace"
        t2=$(now)
        "$experiment" run "$work/a2a-$r-$trace.toml" --out "$work/out-$r-$trace" > "$work/log-$r-$trace" 2>&1
        t3=$(now)
        walls+=("$(echo "$t3 - $t2" | bc -l)")
    done
    # The full-trace summary table's micro.max_us column: each size's slowest rank's mean
    # measured call (with counts only, no per-call figures are kept).
    dw=$(awk '$1 == "point" { for (i = 1; i <= NF; i++) if ($i == "micro.max_us") c = i; next }
        c && $1 ~ /^[0-9]+$/ { s += $c } END { printf "%.3f", s }' "$work/log-$r-full")
    smpi_wall=$(echo "$t1 - $t0" | bc -l)
    printf '%6d | %12.3f %12.3f %+7.2f%% | %9.2f %9.2f %9.2f | %8.2fx %8.2fx\n' "$r" "$smpi" "$dw" \
        "$(echo "($dw - $smpi) / $smpi * 100" | bc -l)" "$smpi_wall" "${walls[0]}" "${walls[1]}" \
        "$(echo "$smpi_wall / ${walls[0]}" | bc -l)" "$(echo "$smpi_wall / ${walls[1]}" | bc -l)"
done
