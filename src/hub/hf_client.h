// hub/hf_client.h: the Hugging Face hub over HTTPS, through libcurl (SPEC §17).
//
//   ListFiles: GET {endpoint}/api/models/ORG/NAME/tree/main?recursive=true
//              -> every file with its size and LFS sha256 (the tree API).
//   Download:  GET {endpoint}/ORG/NAME/resolve/main/FILE (redirects followed,
//              to a CDN host: the token is not sent there) into
//              blobs/SHA256.incomplete, resumed with Range from what is
//              already there; the sha256 is computed while the bytes arrive
//              (OpenSSL EVP) and compared with the hub's (the tree's LFS oid,
//              else X-Linked-Etag) before the caller moves the blob into place.
//              X-Repo-Commit names the snapshot.
// Transient failures (429, honouring Retry-After; 5xx; a refused, dropped or
// stalled connection) are retried with exponential backoff, resuming where
// the bytes stopped; then the error says what happened. 401/403 name the
// repository page and HF_TOKEN; 404 says what is missing; no network says
// that cached files still work. Each call uses its own curl handle:
// thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "hub/hf_cache.h"

namespace mw::hub {

inline constexpr std::string_view kDefaultEndpoint = "https://huggingface.co";

struct HubOptions {
  std::string endpoint{kDefaultEndpoint};  // no trailing slash
  std::string token;                       // sent as Bearer to the endpoint's host; empty: none
  bool offline = false;                    // HF_HUB_OFFLINE=1: the cache only
  int max_attempts = 5;                    // per request, transient failures included
  int backoff_ms = 250;                    // first pause; doubles each retry (Retry-After wins)
};

struct DownloadResult {
  std::string sha256;  // of the bytes, hex
  std::string commit;  // X-Repo-Commit; empty when the hub did not say
  int64_t size = 0;
};

// Called with (bytes in the file so far, total or -1) as bytes arrive.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

class HfClient {
 public:
  explicit HfClient(HubOptions options);

  const HubOptions& options() const { return options_; }

  // The repository's files (recursive). kUnauthenticated (401/403),
  // kNotFound (no such repository), kUnavailable (no network, or the hub
  // kept failing).
  [[nodiscard]] Result<std::vector<RepoFile>> ListFiles(std::string_view hf_path) const;

  // What the hub says of one file without its bytes (HEAD, no redirect):
  // sha256 from X-Linked-Etag, commit, size. For files the tree listed without an LFS oid.
  [[nodiscard]] Result<DownloadResult> Describe(std::string_view hf_path, std::string_view file) const;

  // Downloads `file` into `incomplete` (appending to what is there). On
  // success the file holds the whole blob and its sha256 matched
  // `expected_sha256` (when not empty). A mismatch removes `incomplete` and
  // returns kDataLoss. `cancel` set: kAborted("cancelled"), the partial file kept.
  [[nodiscard]] Result<DownloadResult> Download(std::string_view hf_path, const RepoFile& file,
                                                const std::filesystem::path& incomplete,
                                                const ProgressFn& progress, const std::atomic<bool>& cancel) const;

 private:
  HubOptions options_;
};

// The endpoint's repository page, e.g. https://huggingface.co/ORG/NAME.
std::string RepoPage(const HubOptions& options, std::string_view hf_path);

}  // namespace mw::hub
