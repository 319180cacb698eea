#include "protocol/protocol.h"

#include <gtest/gtest.h>

#include <random>

namespace mw::protocol {
namespace {

Message RoundTrip(const Message& m) {
  std::string line = EncodeMessage(m);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one line";
  Result<Message> back = DecodeMessage(line);
  EXPECT_TRUE(back.ok()) << back.status().ToString() << " for " << line;
  return back.ok() ? *back : Message(StoppedMessage{});
}

TEST(ProtocolTest, RoundTripsEveryMessage) {
  std::vector<Message> all = {
      ProgressMessage{0.42},
      LoadedMessage{{{"CPU", DeviceKind::kCpu, 123456}, {"CUDA0", DeviceKind::kGpu, 1ull << 40}}, 4096, 231, 99, 7},
      LoadedMessage{{{"CPU", DeviceKind::kCpu, 1}}, 512, 3, 4, 5, "/run/mw/1.sock"},
      ErrorMessage{kErrModelLoadFailed, "failed to load model: \"quoted\"\nnext line"},
      ProbeMessage{{{"CPU", "AMD Ryzen", DeviceKind::kCpu, 1, 2, "CPU"}, {"Vulkan0", "iGPU", DeviceKind::kIgpu, 3, 4, "Vulkan"}},
                   {{"Vulkan", "loaded", "", 1}, {"CUDA", "skipped", "no CUDA driver on this machine (libcuda.so.1 not found)", 0}}},
      MetadataMessage{"llama", "tiny", 123456789, 1, "F16", 2048, 5000000, 21},
      MetadataMessage{"llama", "tiny", 123456789, 1, "F16", 2048, 5000000, 21, 2, 64, 4, 2, 16, 16, 32000, 4000000},
      StoppedMessage{},
      ReadyMessage{"/run/mw/2.sock"},
      StandbyMessage{},
  };
  for (const Message& m : all) {
    EXPECT_EQ(RoundTrip(m), m) << EncodeMessage(m);
  }
}

// The pre-started worker's `load` line: one line whatever the values hold.
TEST(ProtocolTest, LoadCommandRoundTripsOnOneLine) {
  const LoadCommand command{"/m/a\nb.gguf", R"({"n_ctx": 512})", "request"};
  const std::string line = EncodeLoadCommand(command);
  EXPECT_EQ(line.rfind("load {", 0), 0u) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  Result<LoadCommand> back = DecodeLoadCommand(line);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, command);
  EXPECT_FALSE(DecodeLoadCommand("stop").ok());
  EXPECT_FALSE(DecodeLoadCommand("load {\"model\": 1}").ok());
  EXPECT_FALSE(DecodeLoadCommand("load [").ok());
}

TEST(ProtocolTest, WireFormatMatchesTheDocument) {
  EXPECT_EQ(EncodeMessage(ProgressMessage{0.5}), "{\"progress\":0.5,\"type\":\"progress\"}\n");
  EXPECT_EQ(EncodeMessage(StoppedMessage{}), "{\"type\":\"stopped\"}\n");
  EXPECT_EQ(EncodeMessage(ReadyMessage{"/r/1.sock"}), "{\"socket\":\"/r/1.sock\",\"type\":\"ready\"}\n");
  EXPECT_FALSE(DecodeMessage(R"({"type":"ready"})").ok()) << "socket is required";
  auto m = DecodeMessage(R"({"type":"loaded","devices":[{"name":"CPU","kind":"cpu","memory_used":5}],"n_ctx":512,"load_ms":10})");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const auto& loaded = std::get<LoadedMessage>(*m);
  EXPECT_EQ(loaded.n_ctx, 512);
  EXPECT_EQ(loaded.devices.at(0).memory_used, 5u);
  EXPECT_TRUE(loaded.socket.empty());  // optional: a worker without an engine socket
  auto with_socket = DecodeMessage(R"({"type":"loaded","devices":[],"n_ctx":1,"load_ms":1,"socket":"/run/mw/e1.sock"})");
  ASSERT_TRUE(with_socket.ok()) << with_socket.status().ToString();
  EXPECT_EQ(std::get<LoadedMessage>(*with_socket).socket, "/run/mw/e1.sock");
  EXPECT_FALSE(DecodeMessage(R"({"type":"loaded","devices":[],"n_ctx":1,"load_ms":1,"socket":8081})").ok());
}

TEST(ProtocolTest, AcceptsCrLfAndIgnoresUnknownFields) {
  auto m = DecodeMessage("{\"type\":\"progress\",\"progress\":1,\"eta\":3}\r\n");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_DOUBLE_EQ(std::get<ProgressMessage>(*m).progress, 1.0);
}

TEST(ProtocolTest, RejectsGarbageWithAReason) {
  const char* bad[] = {
      "", "   ", "not json", "{", "[]", "42", "null", "{\"type\":7}", "{}",
      "{\"type\":\"bogus\"}", "{\"type\":\"progress\"}", "{\"type\":\"progress\",\"progress\":\"x\"}",
      "{\"type\":\"progress\",\"progress\":1.5}", "{\"type\":\"progress\",\"progress\":-0.1}",
      "{\"type\":\"progress\",\"progress\":1e999}",
      "{\"type\":\"loaded\",\"devices\":{},\"n_ctx\":1,\"load_ms\":1}",
      "{\"type\":\"loaded\",\"devices\":[1],\"n_ctx\":1,\"load_ms\":1}",
      "{\"type\":\"loaded\",\"devices\":[{\"name\":\"x\",\"kind\":\"tpu\",\"memory_used\":1}],\"n_ctx\":1,\"load_ms\":1}",
      "{\"type\":\"loaded\",\"devices\":[{\"name\":\"x\",\"kind\":\"cpu\",\"memory_used\":-1}],\"n_ctx\":1,\"load_ms\":1}",
      "{\"type\":\"loaded\",\"devices\":[],\"n_ctx\":18446744073709551615,\"load_ms\":1}",
      "{\"type\":\"error\",\"code\":1,\"message\":\"m\"}",
      "{\"type\":\"metadata\",\"architecture\":\"llama\"}",
      "{\"type\":\"probe\",\"devices\":[{\"name\":\"x\",\"kind\":\"cpu\",\"memory_free\":1.5,\"memory_total\":2}]}",
      "\xff\xfe\x00garbage",
  };
  for (const char* line : bad) {
    auto m = DecodeMessage(line);
    EXPECT_FALSE(m.ok()) << line;
    EXPECT_FALSE(m.status().message().empty());
  }
}

TEST(ProtocolTest, RejectsDeepNestingAndHugeLines) {
  std::string deep = "{\"type\":\"stopped\",\"x\":" + std::string(100000, '[');
  EXPECT_FALSE(DecodeMessage(deep).ok());
  std::string huge = "{\"type\":\"error\",\"code\":\"x\",\"message\":\"" + std::string(kMaxLineBytes, 'a') + "\"}";
  auto m = DecodeMessage(huge);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kResourceExhausted);
}

TEST(ProtocolTest, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  const std::string seed = EncodeMessage(LoadedMessage{{{"CPU", DeviceKind::kCpu, 1}}, 1, 2, 3, 4});
  for (int i = 0; i < 2000; ++i) {
    std::string line = seed;
    for (int k = 0; k < 4; ++k) line[rng() % line.size()] = static_cast<char>(rng());
    (void)DecodeMessage(line);  // must return, not crash or throw
  }
}

TEST(ProtocolTest, InvalidUtf8IsReplacedOnEncode) {
  std::string line = EncodeMessage(ErrorMessage{"internal", "bad \xc3\x28 bytes"});
  EXPECT_TRUE(DecodeMessage(line).ok());
}

TEST(LineBufferTest, SplitsPartialReads) {
  LineBuffer buf;
  buf.Append("{\"type\":\"sto");
  EXPECT_FALSE(buf.Next().has_value());
  buf.Append("pped\"}\n{\"type\":\"progress\",\"progress\":0.1}\r\nrest");
  auto a = buf.Next();
  ASSERT_TRUE(a && a->ok());
  EXPECT_EQ(**a, "{\"type\":\"stopped\"}");
  auto b = buf.Next();
  ASSERT_TRUE(b && b->ok());
  EXPECT_TRUE(DecodeMessage(**b).ok());
  EXPECT_FALSE(buf.Next().has_value());
  EXPECT_EQ(buf.TakeRemainder().value_or(""), "rest");
  EXPECT_FALSE(buf.TakeRemainder().has_value());
}

TEST(LineBufferTest, DropsOverlongLinesAndRecovers) {
  LineBuffer buf(16);
  buf.Append(std::string(10, 'a'));
  buf.Append(std::string(10, 'b'));  // now over the limit
  buf.Append(std::string(100, 'c'));
  buf.Append("\nok\n");
  auto first = buf.Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status().code(), StatusCode::kResourceExhausted);
  auto second = buf.Next();
  ASSERT_TRUE(second && second->ok());
  EXPECT_EQ(**second, "ok");
  EXPECT_FALSE(buf.Next().has_value());
}

}  // namespace
}  // namespace mw::protocol
