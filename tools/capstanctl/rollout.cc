#include "tools/capstanctl/rollout.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/api/errors.h"
#include "lib/api/scheme.h"
#include "services/controller-manager/controllers/deployment/rollout.h"

namespace capstan::capstanctl {
namespace {

using capstan::apps::v1::Deployment;
using capstan::apps::v1::ReplicaSet;
namespace rollout = capstan::controllermanager::deployment;

constexpr char kChangeCauseAnnotation[] = "kubernetes.io/change-cause";
constexpr int kConflictRetries = 5;

class RolloutCommand {
 public:
  RolloutCommand(client::Client& client, const std::string& server, const Flags& flags,
                 std::ostream& out, std::ostream& err)
      : client_(client), server_(server), flags_(flags), out_(out), err_(err) {}

  int Run(const std::vector<std::string>& args);

 private:
  void PrintError(const absl::Status& s) {
    if (api::HasApiStatus(s)) {
      err_ << "Error from server (" << api::Reason(s) << "): " << s.message() << "\n";
    } else if (s.code() == absl::StatusCode::kUnavailable) {
      err_ << "Unable to connect to the server " << server_ << ": " << s.message() << "\n";
    } else {
      err_ << "error: " << s.message() << "\n";
    }
  }
  std::string Namespace() const { return flags_.ns.empty() ? "default" : flags_.ns; }
  std::string Typed() const { return "deployment.apps/" + name_; }

  // The deployment named by args ("deployment/NAME" or "deployment NAME") into name_; false
  // (after printing why, with *exit_code set) when they name none.
  bool ParseTarget(const std::string& verb, const std::vector<std::string>& args, int* exit_code);
  absl::StatusOr<std::vector<ReplicaSet>> Owned(const Deployment& deployment);

  int Undo();
  int History();
  int Status();
  int SetPaused(bool paused);

  client::Client& client_;
  const std::string& server_;
  const Flags& flags_;
  std::ostream& out_;
  std::ostream& err_;
  std::string name_;
};

bool RolloutCommand::ParseTarget(const std::string& verb, const std::vector<std::string>& args,
                                 int* exit_code) {
  std::string type, name;
  if (args.size() == 1 && args[0].find('/') != std::string::npos) {
    type = args[0].substr(0, args[0].find('/'));
    name = args[0].substr(args[0].find('/') + 1);
  } else if (args.size() == 2) {
    type = args[0];
    name = args[1];
  } else {
    err_ << "error: required resource not specified: capstanctl rollout " << verb
         << " deployment/NAME\n";
    *exit_code = kExitUsage;
    return false;
  }
  const api::ResourceInfo* info = api::Scheme::BuiltIn().Lookup(type);
  if (info == nullptr) {
    err_ << "error: the server doesn't have a resource type \"" << type << "\"\n";
    *exit_code = kExitError;
    return false;
  }
  if (info->kind != "Deployment") {
    err_ << "error: rollout " << verb << " is not supported for " << info->kind
         << " (only deployments)\n";
    *exit_code = kExitError;
    return false;
  }
  if (name.empty()) {
    err_ << "error: resource name may not be empty\n";
    *exit_code = kExitUsage;
    return false;
  }
  name_ = name;
  return true;
}

absl::StatusOr<std::vector<ReplicaSet>> RolloutCommand::Owned(const Deployment& deployment) {
  absl::StatusOr<client::ObjectList<ReplicaSet>> list =
      client_.List<ReplicaSet>(deployment.metadata().namespace_());
  if (!list.ok()) return list.status();
  std::vector<ReplicaSet> owned;
  for (ReplicaSet& rs : list->items) {
    for (const auto& ref : rs.metadata().owner_references()) {
      if (ref.has_controller() && ref.controller() && ref.uid() == deployment.metadata().uid()) {
        owned.push_back(std::move(rs));
        break;
      }
    }
  }
  return owned;
}

int RolloutCommand::Undo() {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Deployment> deployment = client_.Get<Deployment>(Namespace(), name_);
    if (!deployment.ok()) {
      PrintError(deployment.status());
      return kExitError;
    }
    absl::StatusOr<std::vector<ReplicaSet>> owned = Owned(*deployment);
    if (!owned.ok()) {
      PrintError(owned.status());
      return kExitError;
    }
    bool unchanged = false;
    absl::StatusOr<capstan::core::v1::PodTemplateSpec> target =
        rollout::RollbackTemplate(*deployment, *owned, flags_.to_revision, &unchanged);
    if (!target.ok()) {
      if (target.status().code() == absl::StatusCode::kNotFound && flags_.to_revision == 0) {
        err_ << "error: no rollout history found for deployment \"" << name_ << "\"\n";
      } else {
        err_ << "error: " << target.status().message() << "\n";
      }
      return kExitError;
    }
    if (unchanged) {
      // The revision it matches: the one asked for, or the previous one (the second-highest).
      int64_t revision = flags_.to_revision;
      if (revision == 0) {
        std::vector<int64_t> revisions;
        for (const ReplicaSet& rs : *owned) revisions.push_back(rollout::Revision(rs));
        std::sort(revisions.rbegin(), revisions.rend());
        revisions.erase(std::unique(revisions.begin(), revisions.end()), revisions.end());
        if (revisions.size() > 1) revision = revisions[1];
      }
      out_ << Typed() << " skipped rollback (current template already matches revision "
           << revision << ")\n";
      return kExitOk;
    }
    *deployment->mutable_spec()->mutable_template_() = *target;
    // The Update carries the resourceVersion it was read at: a Conflict means someone wrote in
    // between, so read again and recompute.
    absl::StatusOr<Deployment> updated = client_.Update(*deployment);
    if (updated.ok()) {
      out_ << Typed() << " rolled back\n";
      return kExitOk;
    }
    if (api::Reason(updated.status()) == "Conflict" && attempt + 1 < kConflictRetries) continue;
    PrintError(updated.status());
    return kExitError;
  }
}

int RolloutCommand::History() {
  absl::StatusOr<Deployment> deployment = client_.Get<Deployment>(Namespace(), name_);
  if (!deployment.ok()) {
    PrintError(deployment.status());
    return kExitError;
  }
  absl::StatusOr<std::vector<ReplicaSet>> owned = Owned(*deployment);
  if (!owned.ok()) {
    PrintError(owned.status());
    return kExitError;
  }
  if (flags_.to_revision != 0 || flags_.revision != 0) {
    const int64_t wanted = flags_.revision != 0 ? flags_.revision : flags_.to_revision;
    for (const ReplicaSet& rs : *owned) {
      if (rollout::Revision(rs) != wanted) continue;
      out_ << Typed() << " with revision #" << wanted << "\n";
      out_ << "Pod Template:\n";
      for (const auto& c : rs.spec().template_().spec().containers()) {
        out_ << "  Containers:\n   " << c.name() << ":\n    Image:\t" << c.image() << "\n";
      }
      return kExitOk;
    }
    err_ << "error: unable to find the specified revision\n";
    return kExitError;
  }
  out_ << Typed() << "\n" << RolloutHistoryTable(*owned) << "\n";
  return kExitOk;
}

int RolloutCommand::Status() {
  absl::Duration timeout = absl::InfiniteDuration();
  if (!flags_.timeout.empty()) {
    absl::Duration d;
    if (!absl::ParseDuration(flags_.timeout, &d) || d < absl::ZeroDuration()) {
      err_ << "error: invalid argument \"" << flags_.timeout << "\" for \"--timeout\"\n";
      return kExitUsage;
    }
    if (d > absl::ZeroDuration()) timeout = d;  // 0: wait forever, as kubectl
  }
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  auto report = [&](const Deployment& d, bool* done) -> int {
    absl::StatusOr<RolloutState> state = DeploymentRolloutState(d);
    if (!state.ok()) {
      err_ << "error: " << state.status().message() << "\n";
      return kExitError;
    }
    if (state->message != last) {
      out_ << state->message;
      out_.flush();
      last = state->message;
    }
    *done = state->done;
    return kExitOk;
  };
  while (true) {
    absl::StatusOr<Deployment> deployment = client_.Get<Deployment>(Namespace(), name_);
    if (!deployment.ok()) {
      PrintError(deployment.status());
      return kExitError;
    }
    bool done = false;
    if (int rc = report(*deployment, &done); rc != kExitOk || done) return rc;
    if (absl::Now() >= deadline) break;

    client::WatchOptions options;
    options.field_selector = "metadata.name=" + name_;
    options.resource_version = deployment->metadata().resource_version();
    options.timeout = deadline - absl::Now();
    std::unique_ptr<client::WatchStream<Deployment>> stream =
        client_.Watch<Deployment>(Namespace(), options);
    client::WatchEvent<Deployment> event;
    while (stream->Next(&event)) {
      if (event.type == "BOOKMARK") continue;
      if (event.type == "DELETED") {
        err_ << "error: object has been deleted\n";
        return kExitError;
      }
      if (int rc = report(event.object, &done); rc != kExitOk || done) return rc;
    }
    if (absl::Now() >= deadline) break;
    // The watch ended early (server closed it, too old a revision): read again and go on.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  err_ << "error: timed out waiting for the condition\n";
  return kExitError;
}

int RolloutCommand::SetPaused(bool paused) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Deployment> deployment = client_.Get<Deployment>(Namespace(), name_);
    if (!deployment.ok()) {
      PrintError(deployment.status());
      return kExitError;
    }
    if (deployment->spec().paused() == paused) {
      err_ << "error: deployments.apps \"" << name_ << "\" is " << (paused ? "already" : "not")
           << " paused\n";
      return kExitError;
    }
    deployment->mutable_spec()->set_paused(paused);
    absl::StatusOr<Deployment> updated = client_.Update(*deployment);
    if (updated.ok()) {
      out_ << Typed() << (paused ? " paused\n" : " resumed\n");
      return kExitOk;
    }
    if (api::Reason(updated.status()) == "Conflict" && attempt + 1 < kConflictRetries) continue;
    PrintError(updated.status());
    return kExitError;
  }
}

int RolloutCommand::Run(const std::vector<std::string>& args) {
  static const char* const kVerbs[] = {"undo", "history", "status", "pause", "resume"};
  if (args.empty() ||
      std::find(std::begin(kVerbs), std::end(kVerbs), args[0]) == std::end(kVerbs)) {
    if (args.empty()) {
      err_ << "error: rollout needs a subcommand: undo, history, status, pause or resume\n";
    } else {
      err_ << "error: unknown command \"" << args[0] << "\" for \"capstanctl rollout\"\n";
    }
    return kExitUsage;
  }
  const std::string& verb = args[0];
  int exit_code = kExitOk;
  if (!ParseTarget(verb, std::vector<std::string>(args.begin() + 1, args.end()), &exit_code)) {
    return exit_code;
  }
  if (verb == "undo") return Undo();
  if (verb == "history") return History();
  if (verb == "status") return Status();
  return SetPaused(verb == "pause");
}

}  // namespace

absl::StatusOr<RolloutState> DeploymentRolloutState(const Deployment& d) {
  const std::string& name = d.metadata().name();
  RolloutState state;
  if (d.metadata().generation() > d.status().observed_generation()) {
    state.message = "Waiting for deployment spec update to be observed...\n";
    return state;
  }
  for (const auto& c : d.status().conditions()) {
    if (c.type() == rollout::kProgressing && c.reason() == rollout::kProgressDeadlineExceeded) {
      return absl::FailedPreconditionError(
          absl::StrCat("deployment \"", name, "\" exceeded its progress deadline"));
    }
  }
  const int32_t replicas = d.spec().has_replicas() ? d.spec().replicas() : 1;
  const auto& s = d.status();
  if (s.updated_replicas() < replicas) {
    state.message = absl::StrCat("Waiting for deployment \"", name, "\" rollout to finish: ",
                                 s.updated_replicas(), " out of ", replicas,
                                 " new replicas have been updated...\n");
  } else if (s.replicas() > s.updated_replicas()) {
    state.message = absl::StrCat("Waiting for deployment \"", name, "\" rollout to finish: ",
                                 s.replicas() - s.updated_replicas(),
                                 " old replicas are pending termination...\n");
  } else if (s.available_replicas() < s.updated_replicas()) {
    state.message = absl::StrCat("Waiting for deployment \"", name, "\" rollout to finish: ",
                                 s.available_replicas(), " of ", s.updated_replicas(),
                                 " updated replicas are available...\n");
  } else {
    state.message = absl::StrCat("deployment \"", name, "\" successfully rolled out\n");
    state.done = true;
  }
  return state;
}

std::string RolloutHistoryTable(const std::vector<ReplicaSet>& owned) {
  std::vector<std::pair<int64_t, std::string>> rows;
  for (const ReplicaSet& rs : owned) {
    const int64_t revision = rollout::Revision(rs);
    if (revision <= 0) continue;
    const auto& annotations = rs.metadata().annotations();
    auto it = annotations.find(kChangeCauseAnnotation);
    rows.emplace_back(revision, it == annotations.end() || it->second.empty()
                                    ? std::string("<none>")
                                    : it->second);
  }
  std::sort(rows.begin(), rows.end());
  size_t width = std::string("REVISION").size();
  for (const auto& [revision, cause] : rows) {
    width = std::max(width, absl::StrCat(revision).size());
  }
  auto line = [&](const std::string& a, const std::string& b) {
    return absl::StrCat(a, std::string(width + 2 - a.size(), ' '), b, "\n");
  };
  std::string table = line("REVISION", "CHANGE-CAUSE");
  for (const auto& [revision, cause] : rows) table += line(absl::StrCat(revision), cause);
  return table;
}

int Rollout(client::Client& client, const std::string& server, const Flags& flags,
            const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return RolloutCommand(client, server, flags, out, err).Run(args);
}

}  // namespace capstan::capstanctl
