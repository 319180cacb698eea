# The shell side of tests/require.h (source it): a prerequisite that the
# project's own setup provides is missing.
#
#   mw_require_all       true under `make test` (MW_REQUIRE_ALL=1) and in CI (CI=true)
#   mw_missing WHAT      under mw_require_all: prints "MISSING: WHAT" to stderr
#                        and returns 1 (the caller fails); otherwise prints
#                        "SKIP: missing: WHAT" to stdout and returns 0 (the
#                        caller skips that part)
mw_require_all() { [[ "${MW_REQUIRE_ALL:-}" == 1 || "${CI:-}" == true ]]; }
mw_missing() {
  if mw_require_all; then
    echo "MISSING: $*" >&2
    return 1
  fi
  echo "SKIP: missing: $*"
}
