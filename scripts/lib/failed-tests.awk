# failed-tests.awk: reads `go test -v` output and prints, for each failed test that has no
# failed subtest, the lines it logged (t.Log, t.Error, t.Fatal), whatever other parallel
# tests printed in between. make e2e prints this at the end of a failed run, so the reason
# is next to the closing lines and not 20 minutes of output above them.
#   awk -f failed-tests.awk go-test.log
# go test -v streams a test's log lines indented by four spaces under the test's latest
# "=== RUN / NAME / CONT <test>" header; "--- FAIL: <test> (1.2s)" ends a failed test.
/^=== (RUN|NAME|CONT) / { cur = $3; next }
/^ *--- FAIL: / { failed[$3] = 1; next }
/^ *--- (PASS|SKIP): / { next }
/^    / { if (cur != "") logged[cur] = logged[cur] $0 "\n"; next }
END {
  n = 0
  for (name in failed) {
    leaf = 1
    for (other in failed) if (index(other, name "/") == 1) leaf = 0
    if (!leaf) continue
    if (n++ == 0) print "\nfailed tests, with what each logged:"
    printf "\n%s\n%s", name, (name in logged) ? logged[name] : "    (it logged nothing)\n"
  }
}
