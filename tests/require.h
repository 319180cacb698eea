// The one rule for a test that cannot do its work (issue 27).
//
// Something the project's own setup provides is missing (a Debian package that
// scripts/bootstrap installs, a program this build makes, root where the
// machine allows it): under `make test` (scripts/run-tests sets
// MW_REQUIRE_ALL=1) and in CI (CI=true) the test FAILS naming it; elsewhere
// (a developer's partial machine) it skips with that reason.
//
// The machine itself cannot do it (the kernel refuses mount() to this root,
// the filesystem refuses chattr +i, there is no IPv6 loopback): a skip
// everywhere, with the reason; `make test` ends with a line counting skips by
// reason. tests/require.sh is the same rule for shell scripts.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace mw::testing_require {

// True where a missing prerequisite must fail: MW_REQUIRE_ALL=1 or CI=true.
inline bool RequireAll() {
  const char* all = std::getenv("MW_REQUIRE_ALL");
  const char* ci = std::getenv("CI");
  return (all != nullptr && std::string(all) == "1") || (ci != nullptr && std::string(ci) == "true");
}

}  // namespace mw::testing_require

// MW_REQUIRE(condition, what): carries on when `condition` holds; otherwise
// fails (RequireAll) or skips with "missing: <what>". `what` may be a << chain.
// Only in a TEST body (it returns from the function).
#define MW_REQUIRE(condition, what)               \
  if (condition) {                                \
  } else if (::mw::testing_require::RequireAll()) \
    GTEST_FAIL() << "missing: " << what;          \
  else                                            \
    GTEST_SKIP() << "missing: " << what

// A skip that no setup can avoid: this machine cannot do it.
#define MW_MACHINE_CANNOT(what) GTEST_SKIP() << "machine cannot: " << what
