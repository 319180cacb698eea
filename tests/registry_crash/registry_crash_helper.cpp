// Test helper for registry_crash_test: drives the state machine on a
// registry file and reports each commit point on stdout, so the parent can
// SIGKILL it at a known point.
//   registry_crash_helper begin DB MODEL   BeginAttempt, print "ready <id>", wait forever
//   registry_crash_helper loop DB MODEL    begin/finish forever, print "cycle <n>" after each
#include <unistd.h>

#include <cstdio>
#include <string>

#include "compat/state_machine.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s begin|loop DB MODEL\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  auto reg = mw::Registry::Open(argv[2]);
  if (!reg.ok()) {
    std::fprintf(stderr, "open: %s\n", reg.status().ToString().c_str());
    return 1;
  }
  mw::StateMachine sm(**reg);
  if (mode == "begin") {
    auto id = sm.BeginAttempt(argv[3], false, "crash-helper");
    if (!id.ok()) {
      std::fprintf(stderr, "begin: %s\n", id.status().ToString().c_str());
      return 1;
    }
    // Right after the commit point "testing mark": the worker would start now.
    std::printf("ready %lld\n", static_cast<long long>(*id));
    std::fflush(stdout);
    while (true) pause();
  }
  for (long long n = 0;; ++n) {
    auto id = sm.BeginAttempt(argv[3], true, "crash-helper");
    if (!id.ok()) return 1;
    mw::FailureInfo failure;
    failure.outcome = mw::AttemptOutcome::kCrashed;
    failure.summary = "cycle failure";
    failure.log_excerpt = std::string(2000, 'x');
    auto done = n % 2 == 0 ? sm.FinishSuccess(*id) : sm.FinishFailure(*id, failure);
    if (!done.ok()) return 1;
    std::printf("cycle %lld\n", n);
    std::fflush(stdout);
  }
}
