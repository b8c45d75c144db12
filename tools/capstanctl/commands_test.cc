// Command-line parsing and manifest reading; the commands themselves run against a real server in
// test/capstanctl/capstanctl_test.
#include "tools/capstanctl/commands.h"

#include <sstream>

#include "gtest/gtest.h"
#include "tools/capstanctl/manifests.h"
#include "tools/capstanctl/rollout.h"

namespace capstan::capstanctl {
namespace {

TEST(ParseArgsTest, FlagsAnywhere) {
  absl::StatusOr<Invocation> inv = ParseArgs(
      {"get", "-n", "prod", "pods", "web", "-owide", "--selector=app=x", "-A", "--chunk-size", "7",
       "--field-selector", "status.phase=Running", "-w", "--grace-period=-1"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command, "get");
  EXPECT_EQ(inv->args, (std::vector<std::string>{"pods", "web"}));
  EXPECT_EQ(inv->flags.ns, "prod");
  EXPECT_EQ(inv->flags.output, "wide");
  EXPECT_EQ(inv->flags.selector, "app=x");
  EXPECT_TRUE(inv->flags.all_namespaces);
  EXPECT_TRUE(inv->flags.watch);
  EXPECT_EQ(inv->flags.chunk_size, 7);
  EXPECT_EQ(inv->flags.field_selector, "status.phase=Running");
  EXPECT_FALSE(inv->flags.grace_period.has_value());
}

TEST(ParseArgsTest, FilenamesAndDelete) {
  absl::StatusOr<Invocation> inv =
      ParseArgs({"delete", "-f", "a.yaml", "--filename=-", "--cascade", "orphan", "--grace-period", "0"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->flags.filenames, (std::vector<std::string>{"a.yaml", "-"}));
  EXPECT_EQ(inv->flags.cascade, "orphan");
  EXPECT_EQ(inv->flags.grace_period, 0);
}

TEST(ParseArgsTest, UsageErrors) {
  EXPECT_FALSE(ParseArgs({"get", "--bogus"}).ok());
  EXPECT_FALSE(ParseArgs({"get", "-n"}).ok());
  EXPECT_FALSE(ParseArgs({"get", "--chunk-size", "many"}).ok());
  EXPECT_FALSE(ParseArgs({"get", "-A=maybe"}).ok());
}

TEST(RunTest, UsageExitCodes) {
  std::istringstream in;
  std::ostringstream out, err;
  EXPECT_EQ(capstanctl::Run({}, in, out, err), kExitUsage);
  EXPECT_EQ(capstanctl::Run({"frobnicate"}, in, out, err), kExitUsage);
  EXPECT_EQ(capstanctl::Run({"get", "--bogus"}, in, out, err), kExitUsage);
  EXPECT_EQ(capstanctl::Run({"--help"}, in, out, err), kExitOk);
  EXPECT_NE(out.str().find("Usage:"), std::string::npos);
}

TEST(ManifestsTest, StdinDocumentsAndLists) {
  std::istringstream in(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n# nothing\n---\n"
      "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n"
      "- {apiVersion: v1, kind: Pod, metadata: {name: c}}\n");
  absl::StatusOr<std::vector<Manifest>> manifests = ReadManifests("-", in);
  ASSERT_TRUE(manifests.ok()) << manifests.status();
  ASSERT_EQ(manifests->size(), 3u);
  EXPECT_EQ((*manifests)[0].object["metadata"]["name"], "a");
  EXPECT_EQ((*manifests)[2].object["metadata"]["name"], "c");
  EXPECT_EQ((*manifests)[0].source, "STDIN");
}

TEST(ManifestsTest, DirectoryInNameOrder) {
  std::istringstream in;
  const char* srcdir = getenv("TEST_SRCDIR");
  ASSERT_NE(srcdir, nullptr);
  absl::StatusOr<std::vector<Manifest>> manifests =
      ReadManifests(std::string(srcdir) + "/capstan/test/fixtures/manifests", in);
  ASSERT_TRUE(manifests.ok()) << manifests.status();
  ASSERT_FALSE(manifests->empty());
  for (size_t i = 1; i < manifests->size(); ++i) {
    EXPECT_LE((*manifests)[i - 1].source, (*manifests)[i].source);
  }
  // bad/ is a subdirectory: not read.
  for (const Manifest& m : *manifests) EXPECT_EQ(m.source.find("/bad/"), std::string::npos);
}

TEST(ManifestsTest, Errors) {
  std::istringstream in("a: [\n");
  EXPECT_FALSE(ReadManifests("-", in).ok());
  std::istringstream scalar_list("- 1\n- 2\n");
  EXPECT_FALSE(ReadManifests("-", scalar_list).ok());
  EXPECT_EQ(ReadManifests("/nonexistent/file.yaml", in).status().code(), absl::StatusCode::kNotFound);
}

TEST(ParseArgsTest, RolloutFlags) {
  absl::StatusOr<Invocation> inv =
      ParseArgs({"rollout", "undo", "deployment/web", "--to-revision=3", "--timeout", "1m"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command, "rollout");
  EXPECT_EQ(inv->args, (std::vector<std::string>{"undo", "deployment/web"}));
  EXPECT_EQ(inv->flags.to_revision, 3);
  EXPECT_EQ(inv->flags.timeout, "1m");
  EXPECT_FALSE(ParseArgs({"rollout", "undo", "deploy/web", "--to-revision=x"}).ok());
  EXPECT_FALSE(ParseArgs({"rollout", "undo", "deploy/web", "--to-revision=-1"}).ok());
}

capstan::apps::v1::Deployment RolloutDeployment(int64_t generation, int64_t observed,
                                                int32_t replicas, int32_t total, int32_t updated,
                                                int32_t available) {
  capstan::apps::v1::Deployment d;
  d.mutable_metadata()->set_name("web");
  d.mutable_metadata()->set_generation(generation);
  d.mutable_spec()->set_replicas(replicas);
  d.mutable_status()->set_observed_generation(observed);
  d.mutable_status()->set_replicas(total);
  d.mutable_status()->set_updated_replicas(updated);
  d.mutable_status()->set_available_replicas(available);
  return d;
}

TEST(RolloutStatusTest, KubectlMessages) {
  auto message = [](const capstan::apps::v1::Deployment& d) {
    absl::StatusOr<RolloutState> s = DeploymentRolloutState(d);
    return s.ok() ? s->message + (s->done ? "[done]" : "") : std::string(s.status().message());
  };
  EXPECT_EQ(message(RolloutDeployment(2, 1, 3, 3, 3, 3)),
            "Waiting for deployment spec update to be observed...\n");
  EXPECT_EQ(message(RolloutDeployment(2, 2, 3, 4, 1, 3)),
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been "
            "updated...\n");
  EXPECT_EQ(message(RolloutDeployment(2, 2, 3, 4, 3, 3)),
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending "
            "termination...\n");
  EXPECT_EQ(message(RolloutDeployment(2, 2, 3, 3, 3, 1)),
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are "
            "available...\n");
  EXPECT_EQ(message(RolloutDeployment(2, 2, 3, 3, 3, 3)),
            "deployment \"web\" successfully rolled out\n[done]");
  capstan::apps::v1::Deployment stuck = RolloutDeployment(2, 2, 3, 4, 1, 3);
  auto* c = stuck.mutable_status()->add_conditions();
  c->set_type("Progressing");
  c->set_status("False");
  c->set_reason("ProgressDeadlineExceeded");
  EXPECT_EQ(message(stuck), "deployment \"web\" exceeded its progress deadline");
}

TEST(RolloutHistoryTest, SortedWithChangeCause) {
  std::vector<capstan::apps::v1::ReplicaSet> sets(3);
  (*sets[0].mutable_metadata()->mutable_annotations())["deployment.kubernetes.io/revision"] = "10";
  (*sets[1].mutable_metadata()->mutable_annotations())["deployment.kubernetes.io/revision"] = "2";
  (*sets[1].mutable_metadata()->mutable_annotations())["kubernetes.io/change-cause"] = "bump";
  EXPECT_EQ(RolloutHistoryTable(sets),
            "REVISION  CHANGE-CAUSE\n"
            "2         bump\n"
            "10        <none>\n");
}

}  // namespace
}  // namespace capstan::capstanctl
