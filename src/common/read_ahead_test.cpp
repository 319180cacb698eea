#include "common/read_ahead.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "require.h"

namespace mw {
namespace {

namespace fs = std::filesystem;

// Share of the file's pages in the page cache (mincore over a mapping).
double Resident(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const size_t size = static_cast<size_t>(fs::file_size(path));
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((size + page - 1) / page);
  const int rc = ::mincore(map, size, in.data());
  ::munmap(map, size);
  if (rc != 0) return -1;
  size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return static_cast<double>(n) / static_cast<double>(in.size());
}

// The file's pages out of the page cache (written back first: dirty pages stay).
void Evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

TEST(ReadAheadTest, BringsAnEvictedFileBackIntoThePageCache) {
  // In the build tree, not /tmp: a tmpfs keeps every page resident.
  const fs::path dir = fs::current_path() / "read_ahead_test.dir";
  fs::create_directories(dir);
  const std::string path = (dir / "model.bin").string();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    const std::vector<char> block(1 << 20, 'x');
    for (int i = 0; i < 16; ++i) out.write(block.data(), static_cast<std::streamsize>(block.size()));
  }
  Evict(path);
  const double before = Resident(path);
  ASSERT_GE(before, 0.0);
  if (before > 0.5) MW_MACHINE_CANNOT("evict a file from the page cache here (filesystem keeps it: tmpfs/overlay)");

  ASSERT_TRUE(ReadAhead(path).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  double after = Resident(path);
  while (after < 0.99 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    after = Resident(path);
  }
  EXPECT_GE(after, 0.99) << "resident before " << before;
  fs::remove_all(dir);
}

TEST(ReadAheadTest, AMissingFileIsNotFound) {
  EXPECT_EQ(ReadAhead("/nonexistent/model.gguf").code(), StatusCode::kNotFound);
  StartReadAhead("/nonexistent/model.gguf");  // only logged
}

}  // namespace
}  // namespace mw
