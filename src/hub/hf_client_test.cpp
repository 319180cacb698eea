#include "hub/hf_client.h"

#include <gtest/gtest.h>

namespace mw::hub {
namespace {

// No network (nothing listens on the endpoint): the error says so and that
// the cache still works. Port 1 on loopback refuses at once.
TEST(HfClientTest, NoNetworkSaysSoAndPointsAtTheCache) {
  HubOptions options;
  options.endpoint = "http://127.0.0.1:1/";
  options.max_attempts = 2;
  options.backoff_ms = 1;
  HfClient client(options);
  EXPECT_EQ(client.options().endpoint, "http://127.0.0.1:1");
  auto files = client.ListFiles("org/name");
  ASSERT_EQ(files.status().code(), StatusCode::kUnavailable);
  const std::string& m = files.status().message();
  EXPECT_NE(m.find("cannot reach http://127.0.0.1:1"), std::string::npos) << m;
  EXPECT_NE(m.find("no network?"), std::string::npos) << m;
  EXPECT_NE(m.find("HF_HUB_OFFLINE=1"), std::string::npos) << m;
  EXPECT_EQ(RepoPage(client.options(), "org/name"), "http://127.0.0.1:1/org/name");
}

}  // namespace
}  // namespace mw::hub
