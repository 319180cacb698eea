// api/request_head.h: what the server checks of a request's head once httplib
// has parsed it (within its caps), before any route and before the body is
// read (SPEC §20). Internal to api/ (it includes httplib.h); shared by
// http_server.cpp and fuzz/fuzz_http_head.cpp, so the fuzzer runs the very
// checks the server runs.
//
//   CheckFraming  (in this order) all header lines together over
//                 kMaxHeaderBytes -> 431 headers_too_large; two Host, Origin,
//                 Content-Type, Content-Length or Authorization headers ->
//                 400; Transfer-Encoding -> 411 (chunked bodies are not
//                 accepted); POST/PUT/PATCH without Content-Length -> 411.
//   FactsOf       the request_guard.h facts, as views of the header values
//                 exactly as sent (never percent-decoded); valid while `req` lives.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <optional>

#include "api/request_guard.h"

namespace mw::api {

// All header lines of a request together (name, value, ": " and CRLF).
inline constexpr size_t kMaxHeaderBytes = 64 * 1024;

std::optional<Refusal> CheckFraming(const httplib::Request& req);
RequestFacts FactsOf(const httplib::Request& req);

}  // namespace mw::api
