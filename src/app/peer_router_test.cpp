#include "app/peer_router.h"

#include <gtest/gtest.h>

namespace mw::app {
namespace {

TEST(PeerRouterTest, DefaultAdvertiseUrlIsTheListenAddressUnlessAWildcard) {
  EXPECT_EQ(DefaultAdvertiseUrl("127.0.0.1", 8080), "http://127.0.0.1:8080");
  EXPECT_EQ(DefaultAdvertiseUrl("gpu-a.lan", 9000), "http://gpu-a.lan:9000");
  EXPECT_EQ(DefaultAdvertiseUrl("::1", 80), "http://[::1]:80");
  for (const char* wildcard : {"0.0.0.0", "::", ""}) EXPECT_EQ(DefaultAdvertiseUrl(wildcard, 8080), "") << wildcard;
}

TEST(PeerRouterTest, PeerAtReadsHostAndPort) {
  auto p = PeerAt("n1", "http://10.0.0.5:8080");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->node_id, "n1");
  EXPECT_EQ(p->host, "10.0.0.5");
  EXPECT_EQ(p->port, 8080);
  p = PeerAt("n2", "http://gpu-b/");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host, "gpu-b");
  EXPECT_EQ(p->port, 80);
  p = PeerAt("n3", "http://[::1]:81");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host, "::1");
  EXPECT_EQ(p->port, 81);
  for (const char* bad : {"", "https://a:1", "http://", "http://a:x", "http://a:70000", "http://:80"}) {
    EXPECT_FALSE(PeerAt("n", bad)) << bad;
  }
}

}  // namespace
}  // namespace mw::app
