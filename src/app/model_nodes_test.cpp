// The fleet's views (app/fleet_view.h) over a real registry, on SQLite and
// PostgreSQL: nodes with their leases, this server's summary, and the
// verdicts of every environment class (SPEC §14).
#include "app/fleet_view.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compat/state_machine.h"
#include "support/pg_test_util.h"

namespace mw::app {
namespace {

using testing_util::BackendKind;

class ModelNodesTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    std::string skip, error;
    if (!target_.Prepare(&skip, &error)) {
      if (!skip.empty()) GTEST_SKIP() << skip;
      FAIL() << error;
    }
    reg_ = OpenRegistry();
    ASSERT_NE(reg_, nullptr);
    ModelRecord m;
    m.model_name = "phi";
    m.file_path = "phi.gguf";
    ASSERT_TRUE(reg_->AddModel(m).ok());
  }
  std::unique_ptr<Registry> OpenRegistry() {
    auto reg = Registry::Open(target_.location());
    EXPECT_TRUE(reg.ok()) << reg.status().ToString();
    return reg.ok() ? std::move(reg).value() : nullptr;
  }
  static void Join(Registry& reg, const std::string& id, const std::string& environment_class) {
    NodeRecord self;
    self.node_id = id;
    self.host = "host-" + id;
    self.environment_class = environment_class;
    self.lease_s = 30;
    auto joined = reg.JoinFleet(self);
    ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  }

  testing_util::RegistryTarget target_{GetParam()};
  std::unique_ptr<Registry> reg_;
};
INSTANTIATE_TEST_SUITE_P(Backends, ModelNodesTest, ::testing::ValuesIn(testing_util::kAllBackends),
                         testing_util::BackendNamer());

TEST_P(ModelNodesTest, BeforeJoiningThereAreNoNodesAndOneVerdict) {
  auto nodes = FleetView(*reg_).Nodes();
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  EXPECT_EQ(nodes->this_node, "");
  EXPECT_TRUE(nodes->nodes.empty());
  EXPECT_EQ(nodes->live, 0);
  auto summary = FleetView(*reg_).Summary();
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->node_id, "");
  EXPECT_EQ(summary->nodes_live, 0);
  auto verdicts = FleetView(*reg_).Verdicts("phi");
  ASSERT_TRUE(verdicts.ok()) << verdicts.status().ToString();
  ASSERT_EQ(verdicts->size(), 1u);
  EXPECT_EQ((*verdicts)[0].status, "unknown");
  EXPECT_TRUE((*verdicts)[0].this_node_class);
  EXPECT_EQ(FleetView(*reg_).Verdicts("ghost").status().code(), StatusCode::kNotFound);
}

TEST_P(ModelNodesTest, AJoinedNodeIsListedLiveWithItsLeaseAndItsVerdict) {
  Join(*reg_, "n1", "cpu x86_64 | llama b1");
  auto nodes = FleetView(*reg_).Nodes();
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  EXPECT_EQ(nodes->this_node, "n1");
  EXPECT_EQ(nodes->live, 1);
  ASSERT_EQ(nodes->nodes.size(), 1u);
  const api::NodeView& n = nodes->nodes[0];
  EXPECT_EQ(n.node_id, "n1");
  EXPECT_EQ(n.host, "host-n1");
  EXPECT_EQ(n.environment_class, "cpu x86_64 | llama b1");
  EXPECT_EQ(n.lease_state, "held");
  EXPECT_TRUE(n.live);
  EXPECT_EQ(n.lease_s, 30);
  EXPECT_FALSE(n.heartbeat_at.empty());
  EXPECT_FALSE(n.started_at.empty());
  EXPECT_FALSE(n.expired_by.has_value());
  auto summary = FleetView(*reg_).Summary();
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->node_id, "n1");
  EXPECT_EQ(summary->environment_class, "cpu x86_64 | llama b1");
  EXPECT_EQ(summary->nodes_live, 1);

  StateMachine sm(*reg_);
  auto attempt = sm.BeginAttempt("phi", false, "cpu:test");
  ASSERT_TRUE(attempt.ok()) << attempt.status().ToString();
  ASSERT_TRUE(sm.FinishSuccess(*attempt).ok());
  auto verdicts = FleetView(*reg_).Verdicts("phi");
  ASSERT_TRUE(verdicts.ok()) << verdicts.status().ToString();
  ASSERT_EQ(verdicts->size(), 1u);
  const api::ClassVerdictView& v = (*verdicts)[0];
  EXPECT_EQ(v.environment_class, "cpu x86_64 | llama b1");
  EXPECT_EQ(v.status, "compatible");
  EXPECT_EQ(v.nodes, std::vector<std::string>{"n1"});
  EXPECT_EQ(v.total_loads, 1);
  EXPECT_EQ(v.total_failures, 0);
  EXPECT_TRUE(v.this_node_class);

  // A clean stop: the lease is stopped, the node no longer live.
  ASSERT_TRUE(reg_->LeaveFleet().ok());
  nodes = FleetView(*reg_).Nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->nodes.size(), 1u);
  EXPECT_EQ(nodes->nodes[0].lease_state, "stopped");
  EXPECT_FALSE(nodes->nodes[0].live);
  EXPECT_EQ(nodes->live, 0);
}

// Other nodes' changes: another server's write moves the change count once
// (PostgreSQL); on SQLite no other node writes, so nothing changed elsewhere.
// The hooks get the changed models, then the counts once.
TEST_P(ModelNodesTest, AnotherServersWriteIsSeenOnceAsAChangeElsewhere) {
  std::vector<std::string> published;
  FleetView view(*reg_, {[&](const std::string& model) { published.push_back(model); },
                         [&] { published.push_back("(counts)"); }});
  const bool shared = GetParam() == BackendKind::kPostgres;
  EXPECT_EQ(view.ChangedElsewhere(), std::optional<bool>(shared));  // the first count seen
  EXPECT_EQ(view.ChangedElsewhere(), std::optional<bool>(false));
  std::unique_ptr<Registry> other = OpenRegistry();
  ASSERT_NE(other, nullptr);
  ModelUpdate update;
  update.compatibility_notes = "changed by another server";
  ASSERT_TRUE(other->UpdateModel("phi", update).ok());
  EXPECT_EQ(view.ChangedElsewhere(), std::optional<bool>(shared));
  EXPECT_EQ(view.ChangedElsewhere(), std::optional<bool>(false));
  view.OnRegistryChange({"phi"});
  EXPECT_EQ(published, (std::vector<std::string>{"phi", "(counts)"}));
}

// Two servers of different classes on one PostgreSQL registry: each sees
// both nodes, its own class's verdict first, and the other class's verdict.
// PostgreSQL only (SQLite keeps one verdict per model): not instantiated for
// SQLite rather than skipped there.
class ModelNodesPgTest : public ModelNodesTest {};
INSTANTIATE_TEST_SUITE_P(Backends, ModelNodesPgTest, ::testing::Values(BackendKind::kPostgres),
                         testing_util::BackendNamer());

TEST_P(ModelNodesPgTest, AnotherClassesVerdictFollowsThisNodesOwn) {
  Join(*reg_, "a", "class-a");
  std::unique_ptr<Registry> other = OpenRegistry();
  ASSERT_NE(other, nullptr);
  Join(*other, "b", "class-b");
  StateMachine sm_b(*other);
  auto attempt = sm_b.BeginAttempt("phi", false, "gpu:b");
  ASSERT_TRUE(attempt.ok()) << attempt.status().ToString();
  FailureInfo failure;
  failure.outcome = AttemptOutcome::kCrashed;
  failure.category = "gpu_context";
  failure.summary = "CreateContext failed (hipErrorNoDevice)";
  ASSERT_TRUE(sm_b.FinishFailure(*attempt, failure).ok());

  auto verdicts = FleetView(*reg_).Verdicts("phi");
  ASSERT_TRUE(verdicts.ok()) << verdicts.status().ToString();
  ASSERT_EQ(verdicts->size(), 2u);
  EXPECT_EQ((*verdicts)[0].environment_class, "class-a");
  EXPECT_EQ((*verdicts)[0].status, "unknown");
  EXPECT_TRUE((*verdicts)[0].this_node_class);
  EXPECT_EQ((*verdicts)[1].environment_class, "class-b");
  EXPECT_EQ((*verdicts)[1].status, "incompatible");
  EXPECT_EQ((*verdicts)[1].nodes, std::vector<std::string>{"b"});
  EXPECT_EQ((*verdicts)[1].total_failures, 1);
  ASSERT_TRUE((*verdicts)[1].notes.has_value());
  EXPECT_NE((*verdicts)[1].notes->find("hipErrorNoDevice"), std::string::npos) << *(*verdicts)[1].notes;
  EXPECT_FALSE((*verdicts)[1].this_node_class);

  auto nodes = FleetView(*reg_).Nodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ(nodes->this_node, "a");
  ASSERT_EQ(nodes->nodes.size(), 2u);
  EXPECT_EQ(nodes->nodes[1].node_id, "b");
  EXPECT_EQ(nodes->live, 2);
  auto from_b = FleetView(*other).Nodes();
  ASSERT_TRUE(from_b.ok());
  EXPECT_EQ(from_b->this_node, "b");
  ASSERT_TRUE(other->LeaveFleet().ok());
  auto summary = FleetView(*reg_).Summary();
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->nodes_live, 1);
}

}  // namespace
}  // namespace mw::app
