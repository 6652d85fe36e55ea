# tally.sh — sourced by a suite's run.sh that runs several parts and adds
# them up. It needs WORK, the suite's scratch folder.
#   run LABEL CMD...      runs CMD and shows its output; counts its last
#                         "N passed, N failed" line (none: one failure)
#   run_tap LABEL CMD...  the same for busted's TAP output (ok, not ok, # SKIP)
#   total                 prints "N passed, N failed, N skipped"; its status
#                         is the verdict
# A part that exits non-zero without a failed test counts one failure.
passed=0 failed=0 skipped=0

run() {
    echo "== $1"; shift
    "$@" >"$WORK/out" 2>&1
    rc=$?
    cat "$WORK/out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$WORK/out" | tail -n 1)
    p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3 | tr -d ,)
    [ -z "$line" ] && p=0 f=1
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)) failed=$((failed + f))
}

run_tap() {
    echo "== $1"; shift
    "$@" >"$WORK/out" 2>&1
    rc=$?
    cat "$WORK/out"
    p=$(grep '^ok ' "$WORK/out" | grep -vc '# SKIP'); f=$(grep -c '^not ok ' "$WORK/out")
    s=$(grep -c '^ok .*# SKIP' "$WORK/out")
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

total() {
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
}
