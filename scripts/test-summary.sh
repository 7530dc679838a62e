#!/usr/bin/env bash
# Runs a test command, keeps its output and exit status, and closes with one summary line
# adding up every `test result:` line (cargo prints one per test binary) and every
# `<suite>: N passed, M failed` line (the deploy, chart, alerting and backup checks).
set -uo pipefail
log=$(mktemp)
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^[a-z]+: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
     /^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) p += $i
         if ($(i+1) ~ /^failed/) f += $i
         if ($(i+1) ~ /^ignored/) s += $i
       }
     }
     END { printf "\ntotal: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
exit "$status"
