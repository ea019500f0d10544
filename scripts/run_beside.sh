#!/usr/bin/env bash
# Run one make target in the foreground and others beside it, each into its own log; wait for all,
# print the tail of each background log, fail when any failed.
# Usage: scripts/run_beside.sh <foreground target> <background target>...
# The background runs use databases and broker queues of their own (see the Makefile targets),
# so they can share the machine with the foreground run; on 2 cores this saves their wall time.
set -uo pipefail
foreground=$1; shift
logdir=$(mktemp -d "${TMPDIR:-/tmp}/ag2-logging-beside-XXXXXX")
pids=()
for target in "$@"; do
  echo "run_beside: $target in the background (log: $logdir/$target.log)"
  make --no-print-directory "$target" >"$logdir/$target.log" 2>&1 &
  pids+=("$!")
done
make --no-print-directory "$foreground"
status=$?
i=0
for target in "$@"; do
  if wait "${pids[$i]}"; then
    echo "run_beside: $target passed:"; tail -n 3 "$logdir/$target.log"
  else
    echo "run_beside: $target FAILED; its log:" >&2; tail -n 150 "$logdir/$target.log" >&2
    status=1
  fi
  i=$((i + 1))
done
exit $status
