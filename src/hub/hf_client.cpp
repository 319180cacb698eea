#include "hub/hf_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/log.h"

namespace mw::hub {
namespace fs = std::filesystem;
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t start = s.find_first_not_of(' ');
  return start == std::string::npos ? "" : s.substr(start);
}

// Percent-encodes each segment of a path, keeping the slashes.
std::string EscapePath(std::string_view path) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct Sha256 {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  Sha256() { Reset(); }
  void Reset() { EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr); }
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx.get(), data, n); }
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &len);
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out += kHex[md[i] >> 4];
      out += kHex[md[i] & 15];
    }
    return out;
  }
};

// One HTTP exchange's outcome (the last response after redirects).
struct Exchange {
  CURLcode curl = CURLE_OK;
  std::string curl_error;
  long http = 0;
  std::string body;         // non-2xx bodies and JSON answers (bounded)
  std::string repo_commit;  // X-Repo-Commit of any response in the chain
  std::string linked_etag;  // X-Linked-Etag (quotes removed)
  std::string etag;
  int64_t linked_size = -1;
  int retry_after_s = -1;
  // Download state.
  FILE* file = nullptr;
  Sha256* sha = nullptr;
  int64_t offset = 0;       // bytes in the file before this request
  int64_t done = 0;         // bytes in the file now
  int64_t total = -1;
  bool started = false;     // the first body byte of the final response arrived
  bool truncated = false;   // a 200 to a ranged request: started over
  const ProgressFn* progress = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  std::string write_error;
};

constexpr size_t kMaxErrorBody = 4096;

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    ex->retry_after_s = -1;  // a new response of the chain
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = Lower(line.substr(0, colon));
  std::string value = Trim(line.substr(colon + 1));
  auto unquote = [](std::string v) {
    if (v.rfind("W/", 0) == 0) v = v.substr(2);
    v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
    return v;
  };
  if (name == "x-repo-commit") ex->repo_commit = value;
  if (name == "x-linked-etag") ex->linked_etag = unquote(value);
  if (name == "etag") ex->etag = unquote(value);
  if (name == "x-linked-size") ex->linked_size = std::atoll(value.c_str());
  if (name == "retry-after") ex->retry_after_s = std::atoi(value.c_str());
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t len = size * n;
  if (ex->cancel && ex->cancel->load()) return 0;
  if (!ex->file) {
    if (ex->body.size() < kMaxErrorBody * 256) ex->body.append(data, len);
    return len;
  }
  ex->started = true;
  if (ex->http != 200 && ex->http != 206) {  // an error page: not the file's bytes
    if (ex->body.size() < kMaxErrorBody) ex->body.append(data, std::min(len, kMaxErrorBody - ex->body.size()));
    return len;
  }
  if (ex->http == 200 && ex->offset > 0 && !ex->truncated) {
    // The server ignored Range: start the file over.
    ex->truncated = true;
    if (ftruncate(fileno(ex->file), 0) != 0 || fseek(ex->file, 0, SEEK_SET) != 0) {
      ex->write_error = "cannot truncate the partial file";
      return 0;
    }
    ex->sha->Reset();
    ex->done = 0;
  }
  if (fwrite(data, 1, len, ex->file) != len) {
    ex->write_error = "cannot write the partial file (disk full?)";
    return 0;
  }
  ex->sha->Update(data, len);
  ex->done += static_cast<int64_t>(len);
  if (ex->progress && *ex->progress) (*ex->progress)(ex->done, ex->total);
  return len;
}

int OnXfer(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ex = static_cast<Exchange*>(user);
  return ex->cancel && ex->cancel->load() ? 1 : 0;
}

// Sets the status code as soon as the final response's headers are in, so
// OnBody knows whether the bytes are the file.
size_t OnHeaderWithCode(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    size_t sp = line.find(' ');
    ex->http = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
  }
  if (Lower(std::string(line.substr(0, std::min<size_t>(line.size(), 15)))) == "content-length:" &&
      (ex->http == 200 || ex->http == 206)) {
    const int64_t len = std::atoll(std::string(line.substr(15)).c_str());
    ex->total = (ex->http == 206 ? ex->offset : 0) + len;
  }
  return OnHeader(data, size, n, user);
}

struct CurlHandle {
  CURL* h;
  curl_slist* headers = nullptr;
  CurlHandle() : h(curl_easy_init()) {}
  ~CurlHandle() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
  }
};

void Perform(const HubOptions& options, const std::string& url, Exchange& ex, bool head, bool follow,
             const std::string& range) {
  GlobalInit();
  CurlHandle c;
  curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
  curl_easy_setopt(c.h, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT, 20L);
  // A connection that moves under 1 KiB/s for 60 s is dropped (and retried).
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c.h, CURLOPT_USERAGENT, "modelwarden");
  curl_easy_setopt(c.h, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(c.h, CURLOPT_HEADERFUNCTION, OnHeaderWithCode);
  curl_easy_setopt(c.h, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &ex);
  curl_easy_setopt(c.h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c.h, CURLOPT_XFERINFOFUNCTION, OnXfer);
  curl_easy_setopt(c.h, CURLOPT_XFERINFODATA, &ex);
  if (head) curl_easy_setopt(c.h, CURLOPT_NOBODY, 1L);
  if (!range.empty()) curl_easy_setopt(c.h, CURLOPT_RANGE, range.c_str());
  // A custom Authorization header goes to the first host only: curl drops
  // it when a redirect leads to another host (the CDN needs none).
  if (!options.token.empty()) c.headers = curl_slist_append(c.headers, ("Authorization: Bearer " + options.token).c_str());
  if (c.headers) curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, c.headers);
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c.h, CURLOPT_ERRORBUFFER, error);
  ex.curl = curl_easy_perform(c.h);
  ex.curl_error = error[0] ? error : curl_easy_strerror(ex.curl);
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &ex.http);
}

bool Transient(const Exchange& ex) {
  if (ex.curl != CURLE_OK) {
    switch (ex.curl) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_PARTIAL_FILE:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
      case CURLE_SSL_CONNECT_ERROR:
        return true;
      default:
        return false;
    }
  }
  return ex.http == 429 || ex.http >= 500;
}

std::string HubMessage(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  return "";
}

// The error for a final (non-transient, or retried out) answer.
Status ErrorFor(const HubOptions& options, std::string_view hf_path, std::string_view what, const Exchange& ex,
                int attempts) {
  const std::string page = RepoPage(options, hf_path);
  if (ex.curl != CURLE_OK && ex.http == 0) {
    return UnavailableError("cannot reach " + options.endpoint + " for " + std::string(what) + " (" + ex.curl_error +
                            (attempts > 1 ? ", " + std::to_string(attempts) + " attempts" : "") +
                            "): no network? Models already downloaded still work (HF_HUB_OFFLINE=1 uses the cache only)");
  }
  if (ex.http == 401 || ex.http == 403) {
    return UnauthenticatedError("the repository " + std::string(hf_path) + " is gated or private (HTTP " +
                                std::to_string(ex.http) + "): accept its terms at " + page +
                                " and set HF_TOKEN (or the server option hf_token) to a token that may read it");
  }
  const std::string hub = HubMessage(ex.body);
  if (ex.http == 404) {
    return NotFoundError("not found on " + options.endpoint + ": " + std::string(what) + (hub.empty() ? "" : " (" + hub + ")"));
  }
  if (ex.curl != CURLE_OK) {
    return UnavailableError(std::string(what) + " failed after " + std::to_string(attempts) + " attempts: " + ex.curl_error);
  }
  return UnavailableError(std::string(what) + ": " + options.endpoint + " answered HTTP " + std::to_string(ex.http) +
                          (attempts > 1 ? " " + std::to_string(attempts) + " times" : "") +
                          (hub.empty() ? "" : " (" + hub + ")"));
}

// Sleeps before retry `attempt` (1-based); false when cancelled meanwhile.
bool Backoff(const HubOptions& options, const Exchange& ex, int attempt, const std::atomic<bool>* cancel) {
  int64_t ms = static_cast<int64_t>(options.backoff_ms) << std::min(attempt - 1, 10);
  if (ex.retry_after_s >= 0) ms = std::min<int64_t>(ex.retry_after_s, 60) * 1000;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cancel && cancel->load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

std::string RepoPage(const HubOptions& options, std::string_view hf_path) {
  return options.endpoint + "/" + std::string(hf_path);
}

HfClient::HfClient(HubOptions options) : options_(std::move(options)) {
  while (!options_.endpoint.empty() && options_.endpoint.back() == '/') options_.endpoint.pop_back();
  if (options_.max_attempts < 1) options_.max_attempts = 1;
}

Result<std::vector<RepoFile>> HfClient::ListFiles(std::string_view hf_path) const {
  const std::string url = options_.endpoint + "/api/models/" + EscapePath(hf_path) + "/tree/main?recursive=true";
  Exchange ex;
  int attempt = 1;
  for (;; ++attempt) {
    ex = Exchange{};
    Perform(options_, url, ex, /*head=*/false, /*follow=*/true, "");
    if (ex.curl == CURLE_OK && ex.http == 200) break;
    if (!Transient(ex) || attempt >= options_.max_attempts) {
      return ErrorFor(options_, hf_path, "the file list of repository " + std::string(hf_path), ex, attempt);
    }
    MW_LOG(kWarn, "pull") << "listing " << hf_path << ": " << (ex.http ? "HTTP " + std::to_string(ex.http) : ex.curl_error)
                             << "; retrying";
    Backoff(options_, ex, attempt, nullptr);
  }
  auto j = nlohmann::json::parse(ex.body, nullptr, false);
  if (!j.is_array()) return UnavailableError("the hub's file list of " + std::string(hf_path) + " is not a JSON array");
  std::vector<RepoFile> files;
  for (const auto& e : j) {
    if (!e.is_object() || e.value("type", "") != "file" || !e.contains("path") || !e["path"].is_string()) continue;
    RepoFile f;
    f.path = e["path"].get<std::string>();
    if (e.contains("size") && e["size"].is_number_integer()) f.size = e["size"].get<int64_t>();
    if (e.contains("lfs") && e["lfs"].is_object()) {
      const auto& lfs = e["lfs"];
      if (lfs.contains("oid") && lfs["oid"].is_string()) f.sha256 = lfs["oid"].get<std::string>();
      if (lfs.contains("size") && lfs["size"].is_number_integer()) f.size = lfs["size"].get<int64_t>();
    }
    files.push_back(std::move(f));
  }
  return files;
}

Result<DownloadResult> HfClient::Describe(std::string_view hf_path, std::string_view file) const {
  const std::string url = options_.endpoint + "/" + EscapePath(hf_path) + "/resolve/main/" + EscapePath(file);
  Exchange ex;
  for (int attempt = 1;; ++attempt) {
    ex = Exchange{};
    Perform(options_, url, ex, /*head=*/true, /*follow=*/false, "");
    if (ex.curl == CURLE_OK && ex.http >= 200 && ex.http < 400) break;
    if (!Transient(ex) || attempt >= options_.max_attempts) {
      return ErrorFor(options_, hf_path, "file " + std::string(file) + " of " + std::string(hf_path), ex, attempt);
    }
    Backoff(options_, ex, attempt, nullptr);
  }
  DownloadResult r;
  r.sha256 = !ex.linked_etag.empty() ? ex.linked_etag : ex.etag;
  r.commit = ex.repo_commit;
  r.size = ex.linked_size;
  return r;
}

Result<DownloadResult> HfClient::Download(std::string_view hf_path, const RepoFile& file, const fs::path& incomplete,
                                          const ProgressFn& progress, const std::atomic<bool>& cancel) const {
  const std::string url = options_.endpoint + "/" + EscapePath(hf_path) + "/resolve/main/" + EscapePath(file.path);
  const std::string what = "file " + file.path + " of " + std::string(hf_path);
  std::error_code ec;
  fs::create_directories(incomplete.parent_path(), ec);
  std::unique_ptr<FILE, decltype(&fclose)> out(fopen(incomplete.c_str(), "a+b"), &fclose);
  if (!out) return InternalError("cannot open " + incomplete.string() + " for writing");
  std::vector<char> buffer(1 << 20);
  setvbuf(out.get(), buffer.data(), _IOFBF, buffer.size());
  // What an earlier pull left: hashed once, then resumed from its end.
  Sha256 sha;
  int64_t have = 0;
  {
    std::unique_ptr<FILE, decltype(&fclose)> in(fopen(incomplete.c_str(), "rb"), &fclose);
    std::vector<char> chunk(1 << 20);
    size_t n;
    while (in && (n = fread(chunk.data(), 1, chunk.size(), in.get())) > 0) {
      sha.Update(chunk.data(), n);
      have += static_cast<int64_t>(n);
    }
  }
  if (file.size >= 0 && have > file.size) {  // longer than the file: not ours
    if (ftruncate(fileno(out.get()), 0) != 0) return InternalError("cannot truncate " + incomplete.string());
    sha.Reset();
    have = 0;
  }
  std::string commit;
  std::string linked_etag;
  Exchange ex;
  for (int attempt = 1;; ++attempt) {
    if (file.size >= 0 && have == file.size) break;  // complete already
    ex = Exchange{};
    ex.file = out.get();
    ex.sha = &sha;
    ex.offset = have;
    ex.done = have;
    ex.total = file.size;
    ex.progress = &progress;
    ex.cancel = &cancel;
    fseek(out.get(), 0, SEEK_END);
    Perform(options_, url, ex, /*head=*/false, /*follow=*/true, have > 0 ? std::to_string(have) + "-" : "");
    fflush(out.get());
    have = ex.done;
    if (!ex.repo_commit.empty()) commit = ex.repo_commit;
    if (!ex.linked_etag.empty()) linked_etag = ex.linked_etag;
    if (cancel.load()) return AbortedError("cancelled");
    if (!ex.write_error.empty()) return ResourceExhaustedError(ex.write_error + ": " + incomplete.string());
    if (ex.curl == CURLE_OK && (ex.http == 200 || ex.http == 206)) {
      if (file.size < 0 || have >= file.size) break;
    }
    if (ex.http == 416 && file.size >= 0 && have >= file.size) break;
    const bool dropped_mid_body = ex.curl == CURLE_OK && (ex.http == 200 || ex.http == 206);  // short body
    if ((!Transient(ex) && !dropped_mid_body) || attempt >= options_.max_attempts) {
      return ErrorFor(options_, hf_path, what, ex, attempt);
    }
    MW_LOG(kWarn, "pull") << what << ": " << (ex.curl != CURLE_OK ? ex.curl_error : "HTTP " + std::to_string(ex.http))
                             << " at byte " << have << "; retrying (attempt " << attempt + 1 << ")";
    if (!Backoff(options_, ex, attempt, &cancel)) return AbortedError("cancelled");
  }
  out.reset();
  DownloadResult result;
  result.sha256 = sha.Hex();
  result.commit = commit;
  result.size = have;
  const std::string expected = !file.sha256.empty() ? file.sha256 : linked_etag;
  if (!expected.empty() && Lower(expected) != result.sha256) {
    fs::remove(incomplete, ec);
    return DataLossError("sha256 mismatch for " + what + ": the hub says " + expected + ", the " +
                         std::to_string(have) + " bytes received hash to " + result.sha256 +
                         "; the partial file was discarded (pull again)");
  }
  return result;
}

}  // namespace mw::hub
