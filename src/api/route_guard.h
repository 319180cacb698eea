// route_guard: the one wrapper every /api route is installed through.
//
// Contract: a handler that throws (the core does not, but a library at the
// edge might) answers one JSON 500 `internal` and logs the method, path and
// what was thrown; the server keeps running. Both route tables
// (http_server.cpp, pull_routes.cpp) install their handlers through it.
#pragma once

#include <httplib.h>

#include <exception>
#include <utility>

namespace mw::api {

// Logs the failure and sets `res` to the JSON 500. `what` may be null (a
// non-standard exception).
void AnswerRouteException(const httplib::Request& req, httplib::Response& res, const char* what);

template <typename F>
httplib::Server::Handler GuardedRoute(F f) {
  return [f = std::move(f)](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const std::exception& e) {
      AnswerRouteException(req, res, e.what());
    } catch (...) {
      AnswerRouteException(req, res, nullptr);
    }
  };
}

}  // namespace mw::api
