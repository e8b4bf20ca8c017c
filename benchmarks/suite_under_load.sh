#!/usr/bin/env bash
# The whole test suite N times in a row (default 5) while the bench loops
# beside it on the same machine: the check that no test depends on the
# machine being idle (issue 21). Run from the repository root with the
# test environment active; one line per run goes to suite-under-load.log.
set -u
runs="${1:-5}"
log="suite-under-load.log"
: > "$log"
# The load in a session of its own, so that one signal stops the loop, the
# bench and the simulator it started.
setsid bash -c 'while true; do python -m genevolve_async.bench --no-save-result --quiet >/dev/null 2>&1; done' &
loader=$!
trap 'kill -- -"$loader" 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  python -m pytest -q -p no:cacheprovider > "suite-under-load-$i.txt" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || failed=1
  echo "run $i rc=$rc $(( $(date +%s) - start ))s load=$(cut -d' ' -f1-3 /proc/loadavg) $(tail -1 "suite-under-load-$i.txt")" | tee -a "$log"
done
exit "$failed"
