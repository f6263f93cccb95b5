#!/bin/sh
# Long mode: every fuzz target for RUNS runs (default 1,000,000), from the
# committed seeds, new inputs kept in BUILD/tests/fuzz/<target>_corpus.
# The build must use clang (libFuzzer), e.g.
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DTETHER_BUILD_TESTS=ON \
#         -DTETHER_BUILD_EXAMPLES=OFF -DTETHER_BUILD_BENCHMARKS=OFF
#   ninja -C build-fuzz fuzz_url fuzz_retry_after fuzz_close_payload fuzz_oauth_json \
#         fuzz_genesys_notification fuzz_cli_options fuzz_token_response
#   tests/fuzz/run_long.sh build-fuzz 1000000
set -eu
build=${1:?usage: run_long.sh BUILD_DIR [RUNS]}
runs=${2:-1000000}
src=$(cd "$(dirname "$0")" && pwd)
for t in url retry_after close_payload oauth_json genesys_notification cli_options token_response; do
    out="$build/tests/fuzz/fuzz_${t}_corpus"
    mkdir -p "$out"
    echo "== fuzz_$t: $runs runs"
    "$build/tests/fuzz/fuzz_$t" -runs="$runs" -seed=1 -max_len=4096 -print_final_stats=1 "$out" "$src/corpus/$t" 2>&1 |
        grep -E '^Done|stat::number_of_executed_units|cov: .* ft: .*(DONE|INITED)|ERROR|SUMMARY' || true
done
