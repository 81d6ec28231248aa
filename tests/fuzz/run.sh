#!/usr/bin/env bash
# Run every fuzz target for FUZZ_SECONDS each (make fuzz), and write a table of
# target, seconds and executions to target/fuzz-runs.md. Findings (crash files) are
# left in fuzz/artifacts/<target>/ and make the run fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
SHARED=${SHARED:-../shared}
TARGETS=${FUZZ_TARGETS:-"import shlink jwe envelope grant codes backup backup_content device_batch endpoint bodies"}
# Extra flags for cargo fuzz run: empty keeps debug assertions (overflow checks) on;
# -O builds without them, faster.
FLAGS=${FUZZ_FLAGS:-}
python3 tests/fuzz/seed.py "$SHARED" target/fuzz-corpus
out=target/fuzz-runs.md
echo "| target | seconds | executions | result |" > "$out"
echo "|---|---|---|---|" >> "$out"
status=0
for t in $TARGETS; do
  log=target/fuzz-$t.log
  # shellcheck disable=SC2086
  if cargo +nightly fuzz run $FLAGS "$t" "target/fuzz-corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=2048 > "$log" 2>&1; then
    result="no finding"
  else
    result="FINDING (see $log and fuzz/artifacts/$t)"
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "| $t | $SECONDS_EACH | ${execs:-?} | $result |" | tee -a "$out"
done
exit $status
