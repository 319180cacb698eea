// modelwarden-worker: see worker/worker.h.
#include <csignal>

#include "worker/worker.h"

int main(int argc, char** argv) {
  // A closed protocol pipe must surface as EPIPE, not kill the worker mid-free.
  std::signal(SIGPIPE, SIG_IGN);
  return mw::worker::RunWorker(argc, argv);
}
