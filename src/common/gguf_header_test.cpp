#include "common/gguf_header.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

namespace mw {
namespace {

template <typename T>
void Put(std::string& out, T v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

// A GGUF v3 with one string key, one u32 array key and one tensor named `tensor`.
std::string Gguf(const std::string& tensor) {
  std::string out = "GGUF";
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, 1);  // tensors
  Put<uint64_t>(out, 2);  // key-value pairs
  PutString(out, "general.architecture");
  Put<uint32_t>(out, 8);
  PutString(out, "llama");
  PutString(out, "tokenizer.ggml.token_type");
  Put<uint32_t>(out, 9);
  Put<uint32_t>(out, 4);
  Put<uint64_t>(out, 3);
  for (uint32_t i = 0; i < 3; ++i) Put<uint32_t>(out, i);
  PutString(out, tensor);
  Put<uint32_t>(out, 2);
  Put<uint64_t>(out, 4);
  Put<uint64_t>(out, 2);
  Put<uint32_t>(out, 0);  // f32
  Put<uint64_t>(out, 0);
  return out;
}

class GgufHeaderTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& bytes) {
    const std::string path = ::testing::TempDir() + "gguf_header_test_" + std::to_string(::getpid()) + "_" +
                             std::to_string(n_++) + ".gguf";
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  int n_ = 0;
};

TEST_F(GgufHeaderTest, ReadsTheIndexAndHashesOnlyHeaderAndIndex) {
  const std::string good = Gguf("token_embd.weight");
  auto h = ReadGgufHeader(Write(good + std::string(32, '\1')));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->version, 3u);
  EXPECT_EQ(h->tensor_count, 1u);
  EXPECT_EQ(h->kv_count, 2u);
  EXPECT_EQ(h->index_bytes, good.size());
  // Other tensor data: the same index hash; another tensor index: another hash.
  auto same = ReadGgufHeader(Write(good + std::string(32, '\2')));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->index_hash, h->index_hash);
  auto other = ReadGgufHeader(Write(Gguf("token_embd.weighu")));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->index_hash, h->index_hash);
}

TEST_F(GgufHeaderTest, ATextFileOrACutHeaderIsNotAGguf) {
  auto text = ReadGgufHeader(Write("hello, this is not a model\n"));
  EXPECT_EQ(text.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(text.status().message().find("does not start with the GGUF magic"), std::string::npos);
  const std::string good = Gguf("token_embd.weight");
  auto cut = ReadGgufHeader(Write(good.substr(0, good.size() - 5)));
  EXPECT_EQ(cut.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(cut.status().message().find("tensor 0 is cut off"), std::string::npos) << cut.status().message();
  std::string v9 = good;
  v9[4] = 9;
  EXPECT_NE(ReadGgufHeader(Write(v9)).status().message().find("GGUF version 9 is not supported"), std::string::npos);
  EXPECT_EQ(ReadGgufHeader("/nonexistent/x.gguf").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace mw
