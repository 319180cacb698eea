// supervisor_orphan_helper PID_FILE loading|loaded
// A stand-in for the server: uses the Supervisor to start mw-fake-engine,
// which forks a detached child and writes "<engine pid> <child pid>" to
// PID_FILE. `loading`: the load never becomes ready; `loaded`: it does. The
// helper writes the outcome ("0" for success, else 1) to PID_FILE.outcome,
// then waits forever, to be killed with SIGKILL by the test.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "supervisor/supervisor.h"
#include "supervisor/test_support.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: supervisor_orphan_helper PID_FILE loading|loaded\n");
    return 2;
  }
  const std::string mode = argv[2];
  mw::Supervisor supervisor(mw::SupervisorOptions{});
  mw::LoadRequest request;
  request.model_name = "orphan-test";
  request.model_path = "/nonexistent/model.gguf";
  request.engine = mw::EngineKind::kCommand;
  request.argv = {mw::testing_support::FakeEngine(), "--print", "loading", "--pid-file", argv[1], "--then",
                  "fork-child-and-hang"};
  if (mode == "loading") request.ready_pattern = "never printed";
  auto report = supervisor.Load(request);  // `loading` blocks here until killed
  std::string outcome_file = std::string(argv[1]) + ".outcome";
  if (FILE* f = std::fopen((outcome_file + ".tmp").c_str(), "w")) {
    std::fprintf(f, "%d\n", report.ok() && report->ok() ? 0 : 1);
    std::fclose(f);
    std::rename((outcome_file + ".tmp").c_str(), outcome_file.c_str());
  }
  for (;;) ::pause();
}
