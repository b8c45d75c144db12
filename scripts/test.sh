#!/usr/bin/env bash
# Builds and runs every test, then prints "N passed, N failed" (test cases, from each test's
# XML report; a target that failed to build or left no report counts as one failure).
set -uo pipefail
cd "$(dirname "$0")/.."

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
bazel test //... --test_output=errors --test_summary=short 2>&1 | tee "$summary"
bazel_rc=${PIPESTATUS[0]}

passed=0
failed=0
while read -r target verdict; do
  xml="bazel-testlogs/$(echo "${target#//}" | tr ':' '/')/test.xml"
  if [ "$verdict" = PASSED ] && [ -f "$xml" ]; then
    tests=$(grep -o '<testsuites[^>]*' "$xml" | grep -o ' tests="[0-9]*"' | head -1 | grep -o '[0-9]*')
    fails=$(grep -o '<testsuites[^>]*' "$xml" | grep -o ' failures="[0-9]*"' | head -1 | grep -o '[0-9]*')
    errors=$(grep -o '<testsuites[^>]*' "$xml" | grep -o ' errors="[0-9]*"' | head -1 | grep -o '[0-9]*')
    tests=${tests:-1}
    bad=$(( ${fails:-0} + ${errors:-0} ))
    passed=$((passed + tests - bad))
    failed=$((failed + bad))
  elif [ "$verdict" = PASSED ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done < <(grep -E '^//[^ ]+ +(\(cached\) )?(PASSED|FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|FLAKY|INCOMPLETE)' "$summary" \
          | sed -E 's/\(cached\) //' | awk '{print $1, $2}')

# A build failure before any test ran leaves no per-target lines.
if [ "$bazel_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
