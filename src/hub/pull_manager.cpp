#include "hub/pull_manager.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "common/log.h"
#include "common/time_util.h"

namespace mw::hub {
namespace fs = std::filesystem;
namespace {

constexpr auto kProgressInterval = std::chrono::milliseconds(250);

bool IsHfPart(std::string_view s) {
  if (s.empty() || s.size() > 96 || s == "." || s == "..") return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool ValidHfPath(std::string_view p) {
  size_t slash = p.find('/');
  return slash != std::string_view::npos && p.find('/', slash + 1) == std::string_view::npos &&
         IsHfPart(p.substr(0, slash)) && IsHfPart(p.substr(slash + 1));
}

std::string Bytes(int64_t n) {
  char buf[32];
  if (n >= (int64_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.1f GiB", static_cast<double>(n) / (1 << 30));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(n) / (1 << 20));
  }
  return buf;
}

int64_t FileSize(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

}  // namespace

std::string ModelNameForFile(std::string_view file) {
  std::string base(file.substr(file.rfind('/') == std::string_view::npos ? 0 : file.rfind('/') + 1));
  if (SplitPartOf(base).count > 0) base.resize(base.size() - std::string_view("-00001-of-00003.gguf").size());
  else if (base.size() > 5 && (base.substr(base.size() - 5) == ".gguf" || base.substr(base.size() - 5) == ".GGUF")) {
    base.resize(base.size() - 5);
  }
  for (char& c : base) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
  }
  while (!base.empty() && !std::isalnum(static_cast<unsigned char>(base[0]))) base.erase(0, 1);
  if (base.size() > 128) base.resize(128);
  return base.empty() ? "model" : base;
}

struct PullManager::Transfer {
  std::string key;
  std::string hf_path;
  RepoFile file;
  fs::path incomplete;
  fs::path blob;
  std::atomic<int64_t> done{0};
  std::atomic<bool> cancel{false};
  // Guarded by PullManager::mu_.
  int waiters = 0;
  bool finished = false;
  Status status;
  DownloadResult result;
};

struct PullManager::Pull {
  PullSpec spec;
  fs::path root;
  std::vector<RepoFile> files;
  std::vector<fs::path> cached;  // offline: the snapshot files already there
  // Guarded by PullManager::mu_.
  PullView view;
  bool cancelled = false;
  std::shared_ptr<Transfer> current;
};

PullManager::PullManager(HubOptions options, Hooks hooks) : client_(std::move(options)), hooks_(std::move(hooks)) {}

PullManager::~PullManager() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    for (auto& p : pulls_) p->cancelled = true;
    for (auto& [key, t] : transfers_) t->cancel = true;
  }
  cv_.notify_all();
  // No thread starts once closing_ is set (Start and Run check it, or the
  // pull's cancelled flag, under mu_).
  for (Worker& w : workers_) w.thread.join();
}

void PullManager::SpawnLocked(std::function<void()> body) {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->ended->load()) {
      it->thread.join();  // past its last use of mu_: no wait on this lock
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  auto ended = std::make_shared<std::atomic<bool>>(false);
  workers_.push_back({std::thread([body = std::move(body), ended] {
                        body();
                        *ended = true;
                      }),
                      ended});
}

PullView PullManager::Snapshot(const Pull& pull) { return pull.view; }

Result<PullView> PullManager::Start(const PullSpec& spec) {
  if (!ValidHfPath(spec.hf_path)) {
    return InvalidArgumentError("a repository looks like ORG/NAME (got '" + spec.hf_path.substr(0, 200) + "')");
  }
  auto pull = std::make_shared<Pull>();
  pull->spec = spec;
  ASSIGN_OR_RETURN(pull->root, hooks_.location_root(spec.location));
  if (client_.options().offline) {
    std::vector<RepoFile> cached;
    for (const std::string& f : CachedFiles(pull->root, spec.hf_path)) cached.push_back({f, -1, ""});
    if (cached.empty()) {
      return NotFoundError("HF_HUB_OFFLINE=1: nothing of " + spec.hf_path + " is in the Hugging Face cache under " +
                           pull->root.string() + " (unset HF_HUB_OFFLINE to download it)");
    }
    ASSIGN_OR_RETURN(pull->files, ChooseFiles(cached, spec.hf_path, spec.file, spec.quant));
    for (const RepoFile& f : pull->files) pull->cached.push_back(FindCachedFile(pull->root, spec.hf_path, f.path));
  } else {
    ASSIGN_OR_RETURN(std::vector<RepoFile> listed, client_.ListFiles(spec.hf_path));
    ASSIGN_OR_RETURN(pull->files, ChooseFiles(listed, spec.hf_path, spec.file, spec.quant));
    for (RepoFile& f : pull->files) {
      if (!f.sha256.empty() && f.size >= 0) continue;
      ASSIGN_OR_RETURN(DownloadResult d, client_.Describe(spec.hf_path, f.path));
      if (f.sha256.empty()) f.sha256 = d.sha256;
      if (f.size < 0) f.size = d.size;
      if (f.sha256.empty()) return UnavailableError("the hub gives no sha256 for " + f.path + " of " + spec.hf_path);
    }
    // Free space first (SPEC §17): what is not on disk yet.
    int64_t needed = 0;
    for (const RepoFile& f : pull->files) {
      if (fs::exists(BlobPath(pull->root, spec.hf_path, f.sha256))) continue;
      needed += std::max<int64_t>(0, f.size - FileSize(IncompletePath(pull->root, spec.hf_path, f.sha256)));
    }
    std::error_code ec;
    fs::create_directories(pull->root / RepoDirName(spec.hf_path) / "blobs", ec);
    struct statvfs st {};
    if (statvfs(pull->root.c_str(), &st) == 0) {
      const int64_t free_bytes = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
      if (needed > free_bytes) {
        return ResourceExhaustedError("not enough disk space in location '" + spec.location + "' (" +
                                      pull->root.string() + ") for " + spec.hf_path + ": the download needs " +
                                      Bytes(needed) + " (" + std::to_string(needed) + " bytes), " + Bytes(free_bytes) +
                                      " (" + std::to_string(free_bytes) + " bytes) free");
      }
    }
  }
  PullView& v = pull->view;
  v.hf_path = spec.hf_path;
  for (const RepoFile& f : pull->files) {
    v.files.push_back(f.path);
    v.bytes_total += std::max<int64_t>(0, f.size);
  }
  v.model_name = spec.model_name.empty() ? ModelNameForFile(pull->files.front().path) : spec.model_name;
  v.location = spec.location;
  v.state = "downloading";
  v.started_at = NowIso8601();
  RETURN_IF_ERROR(hooks_.check_name(v.model_name));
  PullView out;
  {
    std::lock_guard lock(mu_);
    if (closing_) return UnavailableError("the server is shutting down");
    v.id = "pull-" + std::to_string(next_id_++);
    pulls_.push_back(pull);
    out = v;
    SpawnLocked([this, pull] { Run(pull); });
  }
  return out;
}

std::vector<PullView> PullManager::List() {
  std::lock_guard lock(mu_);
  std::vector<PullView> out;
  for (auto it = pulls_.rbegin(); it != pulls_.rend(); ++it) out.push_back((*it)->view);
  return out;
}

Result<PullView> PullManager::Cancel(const std::string& id) {
  std::shared_ptr<Pull> pull;
  {
    std::lock_guard lock(mu_);
    for (auto& p : pulls_) {
      if (p->view.id == id) pull = p;
    }
    if (!pull) return NotFoundError("no pull '" + id.substr(0, 200) + "' (GET /api/pulls lists them)");
    if (pull->view.finished()) return pull->view;
    if (!pull->cancelled) {
      pull->cancelled = true;
      if (pull->current && !pull->current->finished && --pull->current->waiters == 0) pull->current->cancel = true;
    }
  }
  cv_.notify_all();
  std::optional<PullView> done = Wait(id, std::chrono::seconds(30));
  if (done) return *done;
  std::lock_guard lock(mu_);
  return pull->view;
}

std::optional<PullView> PullManager::Wait(const std::string& id, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::shared_ptr<Pull> pull;
  for (auto& p : pulls_) {
    if (p->view.id == id) pull = p;
  }
  if (!pull) return std::nullopt;
  if (!cv_.wait_for(lock, timeout, [&] { return pull->view.finished(); })) return std::nullopt;
  return pull->view;
}

void PullManager::Finish(const std::shared_ptr<Pull>& pull, const std::string& state, const Status& status) {
  PullView v;
  {
    std::lock_guard lock(mu_);
    pull->view.state = state;
    pull->view.eta_s.reset();
    if (!status.ok()) {
      pull->view.error = status.message();
      pull->view.error_code = std::string(StatusCodeName(status.code()));
    }
    pull->view.finished_at = NowIso8601();
    pull->current.reset();
    v = pull->view;
  }
  cv_.notify_all();
  if (state == "failed") MW_LOG(kWarn, "pull") << v.id << " " << v.hf_path << " failed: " << v.error;
  else MW_LOG(kInfo, "pull") << v.id << " " << v.hf_path << " " << state;
  if (hooks_.on_change) hooks_.on_change(v);
}

void PullManager::RunTransfer(const std::shared_ptr<Transfer>& t) {
  Result<DownloadResult> r = client_.Download(
      t->hf_path, t->file, t->incomplete, [&t](int64_t done, int64_t) { t->done = done; }, t->cancel);
  Status status = r.status();
  if (r.ok()) {
    std::error_code ec;
    fs::rename(t->incomplete, t->blob, ec);
    if (ec) status = InternalError("cannot move " + t->incomplete.string() + " into place: " + ec.message());
  }
  {
    std::lock_guard lock(mu_);
    t->finished = true;
    t->status = status;
    if (r.ok()) t->result = *r;
    if (auto it = transfers_.find(t->key); it != transfers_.end() && it->second == t) transfers_.erase(it);
  }
  cv_.notify_all();
}

void PullManager::Run(const std::shared_ptr<Pull>& pull) {
  const auto start = std::chrono::steady_clock::now();
  int64_t completed = 0;          // bytes of files already in place
  int64_t first_bytes = -1;       // bytes on disk when this pull began (not counted in its rate)
  std::string commit;
  const std::string& hf_path = pull->spec.hf_path;
  for (size_t i = 0; i < pull->files.size() && pull->cached.empty(); ++i) {
    const RepoFile& f = pull->files[i];
    const fs::path blob = BlobPath(pull->root, hf_path, f.sha256);
    if (fs::exists(blob)) {
      completed += std::max<int64_t>(0, f.size);
      continue;
    }
    std::shared_ptr<Transfer> t;
    {
      std::unique_lock lock(mu_);
      // A transfer of this blob being cancelled still writes its
      // .incomplete file: wait for it to end, then resume from what it left.
      auto it = transfers_.find(blob.string());
      while (!pull->cancelled && it != transfers_.end() && it->second->cancel) {
        cv_.wait(lock);
        it = transfers_.find(blob.string());
      }
      if (pull->cancelled) break;
      if (it != transfers_.end()) {
        t = it->second;
        pull->view.shared = true;
      } else {
        t = std::make_shared<Transfer>();
        t->key = blob.string();
        t->hf_path = hf_path;
        t->file = f;
        t->incomplete = IncompletePath(pull->root, hf_path, f.sha256);
        t->blob = blob;
        t->done = FileSize(t->incomplete);
        transfers_[t->key] = t;
        SpawnLocked([this, t] { RunTransfer(t); });
      }
      ++t->waiters;
      pull->current = t;
    }
    for (;;) {
      PullView v;
      bool finished = false, cancelled = false;
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, kProgressInterval, [&] { return t->finished || pull->cancelled; });
        finished = t->finished;
        cancelled = pull->cancelled;
        const int64_t now_bytes = completed + (finished && t->status.ok() ? f.size : t->done.load());
        if (first_bytes < 0) first_bytes = now_bytes;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        PullView& pv = pull->view;
        pv.bytes_done = now_bytes;
        pv.rate_bytes_per_s = secs > 0 ? static_cast<double>(now_bytes - first_bytes) / secs : 0;
        if (pv.rate_bytes_per_s > 0 && pv.bytes_total >= now_bytes) {
          pv.eta_s = static_cast<int64_t>(static_cast<double>(pv.bytes_total - now_bytes) / pv.rate_bytes_per_s + 0.5);
        }
        v = pv;
      }
      if (cancelled) return Finish(pull, "cancelled", Status::Ok());
      if (finished) break;
      if (hooks_.on_change) hooks_.on_change(v);
    }
    if (!t->status.ok()) {
      if (t->status.code() == StatusCode::kAborted) {
        // The transfer was cancelled under a pull that still wanted it (every
        // other waiter left at that moment): this pull fails too.
        return Finish(pull, "cancelled", Status::Ok());
      }
      return Finish(pull, "failed", t->status);
    }
    if (!t->result.commit.empty()) commit = t->result.commit;
    completed += f.size;
  }
  {
    std::unique_lock lock(mu_);
    if (pull->cancelled) {
      lock.unlock();
      return Finish(pull, "cancelled", Status::Ok());
    }
    pull->view.state = "registering";
    pull->view.bytes_done = pull->view.bytes_total;
    pull->view.eta_s.reset();
  }
  std::string file_path;
  if (!pull->cached.empty()) {
    file_path = pull->cached.front().lexically_relative(pull->root).string();
  } else {
    if (commit.empty()) {
      Result<DownloadResult> d = client_.Describe(hf_path, pull->files.front().path);
      if (d.ok()) commit = d->commit;
    }
    if (commit.empty()) commit = "main";
    for (const RepoFile& f : pull->files) {
      Status st = LinkSnapshot(pull->root, hf_path, commit, f.path, f.sha256);
      if (!st.ok()) return Finish(pull, "failed", st);
    }
    file_path = SnapshotPath(pull->root, hf_path, commit, pull->files.front().path).lexically_relative(pull->root).string();
  }
  PullView v;
  {
    std::lock_guard lock(mu_);
    v = pull->view;
  }
  if (hooks_.on_change) hooks_.on_change(v);
  Status reg = hooks_.register_model(v, file_path);
  if (!reg.ok()) return Finish(pull, "failed", reg);
  if (pull->spec.test && hooks_.test_model) {
    {
      std::lock_guard lock(mu_);
      pull->view.state = "testing";
      v = pull->view;
    }
    if (hooks_.on_change) hooks_.on_change(v);
    std::string status = hooks_.test_model(v.model_name);
    std::lock_guard lock(mu_);
    pull->view.compatibility_status = status;
  }
  Finish(pull, "done", Status::Ok());
}

}  // namespace mw::hub
