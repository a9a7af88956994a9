#!/usr/bin/env bash
# The test command: build, then the fast tests that need no root (the Rust unit tests and
# the vitest `unit` project), then the vitest `kernel` suites on this machine's kernel,
# then the kernel suites on Debian's 6.1, 6.12 and newest kernels under QEMU
# (test/vm/matrix.mjs), then the arm64 guests (test/vm/arm64.mjs). NODEBPF_SKIP_MATRIX=1 runs
# the native part alone.
# The last line, `total: N passed, N failed, N skipped`, counts only this run: each report
# is deleted before its run, and a report that is missing afterwards counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh || exit 1
bash scripts/mounts.sh || exit 1
mkdir -p target
status=0
p=0 f=0 s=0
# Why the run fails, repeated at the end: CI keeps only the head and tail of long output.
reasons=()
fail() {
  echo "$1" >&2
  reasons+=("$1")
  status=1
}

# cargo prints `test result: ok. N passed; M failed; K ignored; …` once per test binary
# (unit tests, doc tests): summed. No such line at all means it did not get to run tests.
rm -f target/cargo-test.log
cargo test -q -p nodebpf-core 2>&1 | tee target/cargo-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "cargo test exited ${PIPESTATUS[0]}"
cargo_counts=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored;.*/\1 \2 \3/p' target/cargo-test.log |
  awk '{ p += $1; f += $2; s += $3; n++ } END { if (n) print p, f, s }')
read -r cp cf cs <<<"${cargo_counts:-0 1 0}"
[ -n "$cargo_counts" ] || fail "cargo test: no test results"
echo "cargo: $cp passed, $cf failed, $cs skipped"
p=$((p + cp)) f=$((f + cf)) s=$((s + cs))

# One vitest project; adds its counts from its JSON report.
vitest_project() {
  local project=$1 report=target/vitest-$1.json counts
  rm -f "$report"
  npx vitest run --project "$project" --reporter=default --reporter=json --outputFile="$report" ||
    fail "vitest $project exited $?"
  # A file that fails outside its tests (an import, a hook), or that the run never reached,
  # counts as one failure: vitest exits 1 for it while numFailedTests stays 0.
  counts=$(node test/vm/report.mjs "$report" "$project") || fail "vitest $project: no report ($report): counted as a failure"
  local vp vf vs
  read -r vp vf vs <<<"${counts:-0 1 0}"
  echo "vitest $project: $vp passed, $vf failed, $vs skipped"
  p=$((p + vp)) f=$((f + vf)) s=$((s + vs))
}
vitest_project unit
vitest_project kernel
echo "native: $p passed, $f failed, $s skipped"

if [ "${NODEBPF_SKIP_MATRIX:-0}" != 1 ]; then
  rm -f target/matrix.log
  node test/vm/matrix.mjs | tee target/matrix.log
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || fail "the kernel matrix exited $rc: $(sed -n 's/^\([^ ]*\): FAILED/\1/p' target/matrix.log | tr '\n' ';')"
  matrix=$(sed -n 's/^matrix: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' target/matrix.log)
  [ -n "$matrix" ] || fail "matrix: no summary line: counted as a failure"
  read -r mp mf ms <<<"${matrix:-0 1 0}"
  p=$((p + mp)) f=$((f + mf)) s=$((s + ms))
fi
# The arm64 guests (test/vm/arm64.mjs, 2-3 minutes with its downloads): the packed
# tarball in Debian's arm64 6.12 and 7.2 under TCG, a smoke suite with exact counts. Needs the
# linux-arm64 half of the package (scripts/build-arm64.sh). NODEBPF_SKIP_ARM64=1 leaves it out.
if [ "${NODEBPF_SKIP_MATRIX:-0}" != 1 ] && [ "${NODEBPF_SKIP_ARM64:-0}" != 1 ]; then
  rm -f target/arm64.log
  node test/vm/arm64.mjs | tee target/arm64.log
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || fail "the arm64 guests exited $rc"
  arm64=$(sed -n 's/^arm64: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' target/arm64.log)
  [ -n "$arm64" ] || fail "arm64: no summary line: counted as a failure"
  read -r ap af <<<"${arm64:-0 1}"
  p=$((p + ap)) f=$((f + af))
fi
for r in "${reasons[@]}"; do echo "failing: $r"; done
echo "total: $p passed, $f failed, $s skipped"
exit $status
