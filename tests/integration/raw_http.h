// A raw-socket HTTP/1.1 client for tests that need what http::HttpClient does
// not give: response headers, reading a stream piece by piece, hanging up
// mid-answer.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace mw::itest {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
};

class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return fd_ >= 0; }
  // Sends a request with Content-Type: application/json and Connection: close.
  bool Send(const std::string& method, const std::string& path, const std::string& body,
            const std::string& extra_headers = "");
  // Reads until `needle` is in what was received, the peer closes, or the
  // timeout passes; returns everything received so far (raw, chunked).
  const std::string& ReadUntil(const std::string& needle, std::chrono::seconds timeout = std::chrono::seconds(30));
  // Reads until the peer closes (or the timeout) and parses the response.
  RawResponse ReadResponse(std::chrono::seconds timeout = std::chrono::seconds(60));
  bool closed_by_peer() const { return eof_; }
  void Close();

 private:
  int fd_ = -1;
  bool eof_ = false;
  std::string received_;
};

// One request, whole response.
RawResponse RawRequest(int port, const std::string& method, const std::string& path, const std::string& body,
                       const std::string& extra_headers = "");
// Parses a complete raw response (status line, headers, chunked or plain body).
RawResponse ParseRawResponse(const std::string& raw);
// The data of each "data:" event of a server-sent-events body, in order.
std::vector<std::string> Events(const std::string& body);

}  // namespace mw::itest
