#include "lib/base/subprocess.h"

#include "gtest/gtest.h"

namespace capstan::base {
namespace {

TEST(RunCommand, CapturesStdoutStderrAndExitCode) {
  absl::StatusOr<CommandResult> r = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(RunCommand, MergesStderrWhenAsked) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"/bin/sh", "-c", "echo a; echo b >&2"}, {.merge_stderr = true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "a\nb\n");
  EXPECT_EQ(r->err, "");
}

TEST(RunCommand, StdinIsEmpty) {
  absl::StatusOr<CommandResult> r = RunCommand({"/bin/cat"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, "");
}

TEST(RunCommand, TimeoutKillsTheProcessGroup) {
  // The shell's child keeps the pipe open; only killing the whole group ends the read.
  absl::StatusOr<CommandResult> r =
      RunCommand({"/bin/sh", "-c", "echo started; sleep 30 & wait"}, {.timeout = absl::Milliseconds(300)});
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("started"), absl::string_view::npos);
}

TEST(RunCommand, MissingProgramIsAnError) {
  absl::StatusOr<CommandResult> r = RunCommand({"/nonexistent/program"});
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace capstan::base
