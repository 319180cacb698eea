#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace mw::metrics {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

TEST(MetricsTest, EmptyServerRendersEveryFamilyWithHelpAndType) {
  Metrics m;
  Snapshot s;
  s.models_by_status = {{"compatible", 2}, {"unknown", 1}};
  s.loaded_models = 1;
  s.version = "1.2.3";
  std::string text = m.Render(s);
  for (const char* name : {"modelwarden_models", "modelwarden_load_attempts_total", "modelwarden_load_duration_seconds",
                           "modelwarden_loaded_models", "modelwarden_environment_failing", "modelwarden_evictions_total",
                           "modelwarden_requests_total", "modelwarden_time_to_first_token_seconds",
                           "modelwarden_tokens_generated_total", "modelwarden_queue_depth",
                           "modelwarden_engine_hangs_total", "modelwarden_request_timeouts_total"}) {
    EXPECT_NE(text.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
    EXPECT_NE(text.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
  }
  EXPECT_TRUE(Has(text, "modelwarden_models{status=\"compatible\"} 2"));
  EXPECT_TRUE(Has(text, "modelwarden_loaded_models 1"));
  EXPECT_TRUE(Has(text, "modelwarden_environment_failing 0"));
  EXPECT_TRUE(Has(text, "modelwarden_build_info{version=\"1.2.3\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_count 0"));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  Metrics m;
  m.RecordLoadAttempt("success", "none", 0.1);   // le="0.1" is inclusive
  m.RecordLoadAttempt("failed", "oom", 3);
  m.RecordLoadAttempt("crashed", "driver", 5000);  // above every bound: +Inf only
  m.RecordLoadAttempt("cancelled", "", -1);        // no process: not observed
  std::string text = m.Render({});
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_bucket{le=\"0.1\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_bucket{le=\"2.5\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_bucket{le=\"5\"} 2"));
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_bucket{le=\"1800\"} 2"));
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_count 3"));
  EXPECT_TRUE(Has(text, "modelwarden_load_duration_seconds_sum 5003.1"));
  EXPECT_TRUE(Has(text, "modelwarden_load_attempts_total{outcome=\"cancelled\",category=\"none\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_load_attempts_total{outcome=\"failed\",category=\"oom\"} 1"));
}

TEST(MetricsTest, InferenceCallsAndEnvironmentSetter) {
  Metrics m;
  m.RecordRequest("phi", 200);
  m.RecordRequest("phi", 200);
  m.RecordRequest("", 404);
  m.RecordFirstToken(0.05);
  m.AddTokens("phi", 10);
  m.AddTokens("phi", 5);
  m.AddTokens("phi", -3);  // ignored
  m.SetQueueDepth(4);
  m.AddQueueDepth(-1);
  m.RecordEngineHang("phi");  // SPEC §19
  m.RecordRequestTimeout("phi");
  m.RecordRequestTimeout("phi");
  m.SetEnvironmentFailing(true);
  m.RecordEviction("max_loaded_models");
  m.RecordEviction("max_loaded_models");
  m.RecordEviction("memory");
  std::string text = m.Render({});
  EXPECT_TRUE(Has(text, "modelwarden_evictions_total{reason=\"max_loaded_models\"} 2"));
  EXPECT_TRUE(Has(text, "modelwarden_evictions_total{reason=\"memory\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_requests_total{model=\"phi\",code=\"200\"} 2"));
  EXPECT_TRUE(Has(text, "modelwarden_requests_total{model=\"\",code=\"404\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_tokens_generated_total{model=\"phi\"} 15"));
  EXPECT_TRUE(Has(text, "modelwarden_time_to_first_token_seconds_bucket{le=\"0.06\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_time_to_first_token_seconds_bucket{le=\"0.04\"} 0"));
  EXPECT_TRUE(Has(text, "modelwarden_queue_depth 3"));
  EXPECT_TRUE(Has(text, "modelwarden_engine_hangs_total{model=\"phi\"} 1"));
  EXPECT_TRUE(Has(text, "modelwarden_request_timeouts_total{model=\"phi\"} 2"));
  EXPECT_TRUE(Has(text, "modelwarden_environment_failing 1"));
  m.AddQueueDepth(-10);
  EXPECT_TRUE(Has(m.Render({}), "modelwarden_queue_depth 0"));
}

TEST(MetricsTest, LabelValuesAreEscapedAndModelLabelsBounded) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  Metrics m;
  for (size_t i = 0; i < kMaxModelLabels + 5; ++i) m.RecordRequest("m" + std::to_string(i), 200);
  m.RecordRequest("m0", 200);  // a name already kept stays itself
  std::string text = m.Render({});
  EXPECT_TRUE(Has(text, "modelwarden_requests_total{model=\"_other\",code=\"200\"} 5"));
  EXPECT_TRUE(Has(text, "modelwarden_requests_total{model=\"m0\",code=\"200\"} 2"));
}

TEST(MetricsTest, ConcurrentRecordingLosesNothing) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 1000; ++i) {
        m.RecordRequest("x", 200);
        m.AddTokens("x", 1);
        (void)m.Render({});
      }
    });
  }
  for (auto& t : threads) t.join();
  std::string text = m.Render({});
  EXPECT_TRUE(Has(text, "modelwarden_requests_total{model=\"x\",code=\"200\"} 4000"));
  EXPECT_TRUE(Has(text, "modelwarden_tokens_generated_total{model=\"x\"} 4000"));
}

}  // namespace
}  // namespace mw::metrics
