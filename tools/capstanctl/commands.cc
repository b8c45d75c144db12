#include "tools/capstanctl/commands.h"

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/api/codec.h"
#include "lib/api/errors.h"
#include "lib/api/scheme.h"
#include "lib/api/yaml.h"
#include "lib/client/client.h"
#include "tools/capstanctl/apply.h"
#include "tools/capstanctl/manifests.h"
#include "tools/capstanctl/printers.h"
#include "tools/capstanctl/logs.h"
#include "tools/capstanctl/rollout.h"

namespace capstan::capstanctl {
namespace {

namespace apiv1 = capstan::api::v1;
using client::Client;
using client::ObjectPtr;
using google::protobuf::Message;
using nlohmann::json;

constexpr char kVersion[] = "v0.1.0";

constexpr char kUsage[] =
    "capstanctl controls a Capstan cluster.\n"
    "\n"
    "Usage:\n"
    "  capstanctl apply -f FILENAME|DIR|- [-n NS]\n"
    "  capstanctl get KIND [NAME...] [-n NS | -A] [-l SELECTOR] [--field-selector S]\n"
    "                 [-o wide|yaml|json|name] [-w] [--chunk-size N]\n"
    "  capstanctl delete (KIND NAME... | -f FILENAME) [-n NS] [--grace-period N]\n"
    "                 [--cascade=background|foreground|orphan]\n"
    "  capstanctl describe KIND NAME [-n NS]\n"
    "  capstanctl rollout undo deployment/NAME [--to-revision=N] [-n NS]\n"
    "  capstanctl rollout history deployment/NAME [--revision=N] [-n NS]\n"
    "  capstanctl rollout status deployment/NAME [--timeout=DURATION] [-n NS]\n"
    "  capstanctl rollout pause|resume deployment/NAME [-n NS]\n"
    "  capstanctl logs POD [-c CONTAINER] [-f] [-p|--previous] [--tail=N] [-n NS]\n"
    "  capstanctl api-resources\n"
    "  capstanctl version\n"
    "\n"
    "Global flags: --server HOST:PORT, --config PATH (default $CAPSTAN_CONFIG or ~/.capstan/config)\n";

// ---------------------------------------------------------------------------------------------
// Arguments

enum class FlagKind { kString, kBool };

struct FlagSpec {
  const char* long_name;
  const char* short_name;  // "" when none
  FlagKind kind;
};

constexpr FlagSpec kFlagSpecs[] = {
    {"server", "s", FlagKind::kString},        {"config", "", FlagKind::kString},
    {"namespace", "n", FlagKind::kString},     {"all-namespaces", "A", FlagKind::kBool},
    {"selector", "l", FlagKind::kString},      {"field-selector", "", FlagKind::kString},
    {"output", "o", FlagKind::kString},        {"watch", "w", FlagKind::kBool},
    {"chunk-size", "", FlagKind::kString},     {"filename", "f", FlagKind::kString},
    {"grace-period", "", FlagKind::kString},   {"cascade", "", FlagKind::kString},
    {"to-revision", "", FlagKind::kString},    {"revision", "", FlagKind::kString},
    {"timeout", "", FlagKind::kString},        {"help", "h", FlagKind::kBool},
    {"container", "c", FlagKind::kString},     {"follow", "", FlagKind::kBool},
    {"previous", "p", FlagKind::kBool},        {"tail", "", FlagKind::kString},
};

const FlagSpec* FindFlag(absl::string_view name, bool is_short) {
  for (const FlagSpec& spec : kFlagSpecs) {
    if (name == (is_short ? spec.short_name : spec.long_name) && !name.empty()) return &spec;
  }
  return nullptr;
}

absl::Status SetFlag(const FlagSpec& spec, const std::string& value, bool has_value,
                     Flags* flags) {
  std::string name = spec.long_name;
  if (spec.kind == FlagKind::kBool) {
    bool on = !has_value || value == "true";
    if (has_value && value != "true" && value != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid argument \"", value, "\" for \"--", name, "\""));
    }
    if (name == "all-namespaces") flags->all_namespaces = on;
    if (name == "watch") flags->watch = on;
    if (name == "help") flags->help = on;
    if (name == "follow") flags->follow = on;
    if (name == "previous") flags->previous = on;
    return absl::OkStatus();
  }
  if (name == "server") flags->server = value;
  if (name == "config") flags->config = value;
  if (name == "namespace") flags->ns = value;
  if (name == "selector") flags->selector = value;
  if (name == "field-selector") flags->field_selector = value;
  if (name == "output") flags->output = value;
  if (name == "filename") flags->filenames.push_back(value);
  if (name == "cascade") flags->cascade = value;
  if (name == "timeout") flags->timeout = value;
  if (name == "container") flags->container = value;
  if (name == "chunk-size" || name == "grace-period" || name == "to-revision" ||
      name == "revision" || name == "tail") {
    int64_t n;
    if (!absl::SimpleAtoi(value, &n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid argument \"", value, "\" for \"--", name, "\": not an integer"));
    }
    if (name == "chunk-size") flags->chunk_size = n;
    if (name == "grace-period" && n >= 0) flags->grace_period = n;
    if (name == "tail") flags->tail = n;
    if (name == "to-revision" || name == "revision") {
      if (n < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid argument \"", value, "\" for \"--", name, "\": must be >= 0"));
      }
      (name == "to-revision" ? flags->to_revision : flags->revision) = n;
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Errors, printed as kubectl prints them

class Ctl {
 public:
  Ctl(const Flags& flags, std::string server, std::istream& in, std::ostream& out,
      std::ostream& err)
      : flags_(flags), server_(std::move(server)), client_(Client::Connect(server_)), in_(in),
        out_(out), err_(err) {}

  int Apply();
  int Get(const std::vector<std::string>& args);
  int Delete(const std::vector<std::string>& args);
  int Describe(const std::vector<std::string>& args);
  int ApiResources();
  int Version();
  int Rollout(const std::vector<std::string>& args) {
    return capstanctl::Rollout(*client_, server_, flags_, args, out_, err_);
  }
  int Logs(const std::vector<std::string>& args) {
    return capstanctl::Logs(*client_, flags_, args, out_, err_);
  }

 private:
  // "Error from server (NotFound): pods "x" not found", or a client-side failure.
  void PrintError(const absl::Status& s, absl::string_view context = "") {
    if (api::HasApiStatus(s)) {
      err_ << "Error from server (" << api::Reason(s) << "): " << context << s.message() << "\n";
    } else if (s.code() == absl::StatusCode::kUnavailable ||
               s.code() == absl::StatusCode::kDeadlineExceeded) {
      err_ << "Unable to connect to the server " << server_ << ": " << s.message() << "\n";
    } else {
      err_ << "error: " << context << s.message() << "\n";
    }
  }

  std::string Namespace() const { return flags_.ns.empty() ? "default" : flags_.ns; }

  const api::ResourceInfo* Resolve(const std::string& type) {
    const api::ResourceInfo* info = api::Scheme::BuiltIn().Lookup(type);
    if (info == nullptr) {
      err_ << "error: the server doesn't have a resource type \"" << type << "\"\n";
    }
    return info;
  }

  absl::StatusOr<std::vector<ObjectPtr>> ListAll(const api::ResourceInfo& info,
                                                 const std::string& ns, std::string* revision);
  void PrintObjects(const api::ResourceInfo& info, const std::vector<ObjectPtr>& objects,
                    bool single, const std::string& ns);
  std::vector<size_t> widths_;  // of the table printed by get, for -w's rows
  bool table_header_printed_ = false;
  int WatchAndPrint(const api::ResourceInfo& info, const std::string& ns,
                    const std::string& revision, const std::vector<std::string>& names);
  // One manifest of apply: "created", "configured" or "unchanged".
  absl::StatusOr<std::string> ApplyOne(const api::ResourceInfo& info, const std::string& ns,
                                       const json& manifest, const std::string& source);
  absl::StatusOr<client::DeleteOptions> DeleteOptions();
  int DeleteOne(const api::ResourceInfo& info, const std::string& ns, const std::string& name,
                const client::DeleteOptions& options);
  // The namespace a manifest goes to, checking it against -n as kubectl does.
  absl::StatusOr<std::string> ManifestNamespace(const api::ResourceInfo& info,
                                                const json& manifest);
  const api::ResourceInfo* ManifestResource(const json& manifest, const std::string& source);

  const Flags& flags_;
  const std::string server_;
  std::unique_ptr<Client> client_;
  std::istream& in_;
  std::ostream& out_;
  std::ostream& err_;
};

std::string StringAt(const json& object, const char* a, const char* b = nullptr) {
  if (!object.is_object()) return "";
  auto it = object.find(a);
  if (it == object.end()) return "";
  if (b == nullptr) return it->is_string() ? it->get<std::string>() : "";
  return StringAt(*it, b);
}

// ---------------------------------------------------------------------------------------------
// apply

const api::ResourceInfo* Ctl::ManifestResource(const json& manifest, const std::string& source) {
  std::string api_version = StringAt(manifest, "apiVersion");
  std::string kind = StringAt(manifest, "kind");
  std::string name = StringAt(manifest, "metadata", "name");
  if (api_version.empty() || kind.empty()) {
    std::vector<std::string> missing;
    if (api_version.empty()) missing.push_back("apiVersion not set");
    if (kind.empty()) missing.push_back("kind not set");
    err_ << "error: error validating \"" << source << "\": error validating data: ["
         << absl::StrJoin(missing, ", ") << "]\n";
    return nullptr;
  }
  const api::ResourceInfo* info = api::Scheme::BuiltIn().ByKind(api_version, kind);
  if (info == nullptr) {
    err_ << "error: resource mapping not found for name: \"" << name << "\" namespace: \""
         << StringAt(manifest, "metadata", "namespace") << "\" from \"" << source
         << "\": no matches for kind \"" << kind << "\" in version \"" << api_version << "\"\n";
  }
  return info;
}

absl::StatusOr<std::string> Ctl::ManifestNamespace(const api::ResourceInfo& info,
                                                   const json& manifest) {
  if (!info.namespaced) return std::string();
  std::string in_manifest = StringAt(manifest, "metadata", "namespace");
  if (!in_manifest.empty() && !flags_.ns.empty() && in_manifest != flags_.ns) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the namespace from the provided object \"", in_manifest,
        "\" does not match the namespace \"", flags_.ns, "\". You must pass '--namespace=",
        in_manifest, "' to perform this operation."));
  }
  return in_manifest.empty() ? Namespace() : in_manifest;
}

absl::StatusOr<std::string> Ctl::ApplyOne(const api::ResourceInfo& info, const std::string& ns,
                                          const json& manifest, const std::string& source) {
  const std::string name = StringAt(manifest, "metadata", "name");
  json modified = WithLastApplied(manifest);
  absl::StatusOr<std::string> live_text = client_->GetRaw(info, ns, name, apiv1::JSON);
  if (!live_text.ok() && api::Reason(live_text.status()) == "NotFound") {
    absl::StatusOr<std::string> created =
        client_->CreateRaw(info, ns, modified.dump(), apiv1::JSON);
    if (!created.ok()) {
      PrintError(created.status(), absl::StrCat("error when creating \"", source, "\": "));
      return absl::CancelledError();  // already reported
    }
    return std::string("created");
  }
  if (!live_text.ok()) {
    PrintError(live_text.status(),
               absl::StrCat("error when retrieving current configuration of \"", source, "\": "));
    return absl::CancelledError();
  }
  json live = json::parse(*live_text, nullptr, /*allow_exceptions=*/false);
  if (live.is_discarded()) return absl::DataLossError("the server sent invalid JSON");

  json original = LastAppliedOf(live);
  json patch = ThreeWayMergePatch(original, modified, live);
  // An annotation that only differs in form (say, a manifest printed by `get -o yaml`, which
  // lists defaulted fields) does not make a change of its own; an object that never had one gets
  // it, so that later applies can delete fields.
  if (patch.empty() || (!original.is_null() && OnlyLastAppliedChanges(patch))) {
    return std::string("unchanged");
  }
  absl::StatusOr<std::string> patched = client_->PatchRaw(info, ns, name, client::PatchType::kMerge,
                                                          patch.dump(), apiv1::JSON);
  if (!patched.ok()) {
    PrintError(patched.status(), absl::StrCat("error when patching \"", source, "\": "));
    return absl::CancelledError();
  }
  // The server writes nothing for a patch that changes nothing, and keeps the resourceVersion.
  json after = json::parse(*patched, nullptr, false);
  bool same = !after.is_discarded() && StringAt(after, "metadata", "resourceVersion") ==
                                           StringAt(live, "metadata", "resourceVersion");
  return std::string(same ? "unchanged" : "configured");
}

int Ctl::Apply() {
  if (flags_.filenames.empty()) {
    err_ << "error: must specify one of -f and -k\n";
    return kExitUsage;
  }
  int exit_code = kExitOk;
  for (const std::string& path : flags_.filenames) {
    absl::StatusOr<std::vector<Manifest>> manifests = ReadManifests(path, in_);
    if (!manifests.ok()) {
      err_ << "error: " << manifests.status().message() << "\n";
      return kExitError;
    }
    for (Manifest& m : *manifests) {
      const api::ResourceInfo* info = ManifestResource(m.object, m.source);
      if (info == nullptr) {
        exit_code = kExitError;
        continue;
      }
      absl::StatusOr<std::string> ns = ManifestNamespace(*info, m.object);
      if (!ns.ok()) {
        err_ << "error: " << ns.status().message() << "\n";
        exit_code = kExitError;
        continue;
      }
      if (info->namespaced) m.object["metadata"]["namespace"] = *ns;
      std::string name = StringAt(m.object, "metadata", "name");
      if (name.empty()) {
        err_ << "error: error when retrieving current configuration of \"" << m.source
             << "\": resource name may not be empty\n";
        exit_code = kExitError;
        continue;
      }
      absl::StatusOr<std::string> outcome = ApplyOne(*info, *ns, m.object, m.source);
      if (!outcome.ok()) {
        if (outcome.status().code() != absl::StatusCode::kCancelled) PrintError(outcome.status());
        exit_code = kExitError;
        continue;
      }
      out_ << TypedName(*info, name) << " " << *outcome << "\n";
    }
  }
  return exit_code;
}

// ---------------------------------------------------------------------------------------------
// get

absl::StatusOr<std::vector<ObjectPtr>> Ctl::ListAll(const api::ResourceInfo& info,
                                                    const std::string& ns,
                                                    std::string* revision) {
  client::ListOptions options;
  options.label_selector = flags_.selector;
  options.field_selector = flags_.field_selector;
  options.limit = flags_.chunk_size > 0 ? flags_.chunk_size : 0;
  std::vector<ObjectPtr> objects;
  do {
    absl::StatusOr<client::ObjectList<ObjectPtr>> page = client_->List(info, ns, options);
    if (!page.ok()) return page.status();
    for (ObjectPtr& o : page->items) objects.push_back(std::move(o));
    options.continue_token = page->continue_token;
    // Later pages are read at the first one's revision; that one is the list's.
    if (revision->empty()) *revision = page->resource_version;
  } while (!options.continue_token.empty());
  return objects;
}

void Ctl::PrintObjects(const api::ResourceInfo& info, const std::vector<ObjectPtr>& objects,
                       bool single, const std::string& ns) {
  const std::string& format = flags_.output;
  if (format == "yaml" || format == "json") {
    json doc;
    if (single && objects.size() == 1) {
      doc = ObjectJson(info, *objects[0]);
    } else {
      std::vector<json> items;
      for (const ObjectPtr& o : objects) items.push_back(ObjectJson(info, *o));
      doc = ListJson(std::move(items));
    }
    out_ << (format == "yaml" ? api::PrintYaml(doc) : doc.dump(4) + "\n");
    return;
  }
  if (format == "name") {
    for (const ObjectPtr& o : objects) out_ << TypedName(info, api::Meta(*o).name()) << "\n";
    return;
  }
  if (objects.empty()) {
    if (flags_.all_namespaces || !info.namespaced) {
      err_ << "No resources found\n";
    } else {
      err_ << "No resources found in " << ns << " namespace.\n";
    }
    return;
  }
  TableOptions options;
  options.wide = format == "wide";
  options.with_namespace = flags_.all_namespaces;
  std::vector<Row> rows = {TableHeader(info, options)};
  for (const ObjectPtr& o : objects) rows.push_back(TableRow(info, *o, options));
  out_ << RenderTable(rows, &widths_);
  table_header_printed_ = true;
}

int Ctl::WatchAndPrint(const api::ResourceInfo& info, const std::string& ns,
                       const std::string& revision, const std::vector<std::string>& names) {
  client::WatchOptions options;
  options.label_selector = flags_.selector;
  options.field_selector = flags_.field_selector;
  if (names.size() == 1) {
    options.field_selector = absl::StrCat(options.field_selector,
                                          options.field_selector.empty() ? "" : ",",
                                          "metadata.name=", names[0]);
  }
  options.resource_version = revision;
  std::unique_ptr<client::WatchStream<ObjectPtr>> stream = client_->Watch(info, ns, options);
  client::WatchEvent<ObjectPtr> event;
  TableOptions table;
  table.wide = flags_.output == "wide";
  table.with_namespace = flags_.all_namespaces;
  while (stream->Next(&event)) {
    if (event.type == "BOOKMARK") continue;
    const std::string& name = api::Meta(*event.object).name();
    if (names.size() > 1 && std::find(names.begin(), names.end(), name) == names.end()) continue;
    if (flags_.output == "yaml") {
      out_ << "---\n" << api::PrintYaml(ObjectJson(info, *event.object));
    } else if (flags_.output == "json") {
      out_ << ObjectJson(info, *event.object).dump(4) << "\n";
    } else if (flags_.output == "name") {
      out_ << TypedName(info, name) << "\n";
    } else {
      table.now = absl::Now();
      // As kubectl: a watch that started on an empty list prints the header with its first row.
      std::vector<Row> rows;
      if (!table_header_printed_) rows.push_back(TableHeader(info, table));
      rows.push_back(TableRow(info, *event.object, table));
      out_ << RenderTable(rows, &widths_);
      table_header_printed_ = true;
    }
    out_.flush();
  }
  absl::Status s = stream->status();
  if (!s.ok() && s.code() != absl::StatusCode::kCancelled) {
    PrintError(s);
    return kExitError;
  }
  return kExitOk;
}

int Ctl::Get(const std::vector<std::string>& args) {
  if (args.empty()) {
    err_ << "error: you must specify the type of resource to get\n" << kUsage;
    return kExitUsage;
  }
  const std::string& format = flags_.output;
  if (!format.empty() && format != "wide" && format != "yaml" && format != "json" &&
      format != "name") {
    err_ << "error: unable to match a printer suitable for the output format \"" << format
         << "\", allowed formats are: json,name,wide,yaml\n";
    return kExitError;
  }
  std::string type = args[0];
  std::vector<std::string> names(args.begin() + 1, args.end());
  // kubectl's TYPE/NAME form.
  if (size_t slash = type.find('/'); slash != std::string::npos && names.empty()) {
    names.push_back(type.substr(slash + 1));
    type = type.substr(0, slash);
  }
  const api::ResourceInfo* info = Resolve(type);
  if (info == nullptr) return kExitError;
  std::string ns = flags_.all_namespaces ? "" : Namespace();

  int exit_code = kExitOk;
  std::vector<ObjectPtr> objects;
  std::string revision;
  if (names.empty()) {
    absl::StatusOr<std::vector<ObjectPtr>> listed = ListAll(*info, ns, &revision);
    if (!listed.ok()) {
      PrintError(listed.status());
      return kExitError;
    }
    objects = std::move(*listed);
  } else {
    for (const std::string& name : names) {
      absl::StatusOr<ObjectPtr> object = client_->Get(*info, Namespace(), name);
      if (!object.ok()) {
        PrintError(object.status());
        exit_code = kExitError;
        continue;
      }
      objects.push_back(std::move(*object));
    }
  }
  if (!(names.size() > 0 && objects.empty())) {
    PrintObjects(*info, objects, /*single=*/names.size() == 1, ns);
  }
  if (flags_.watch && exit_code == kExitOk) {
    out_.flush();
    // Named gets read objects one by one: watch from the newest revision of the whole resource.
    if (!names.empty()) {
      client::ListOptions latest;
      latest.limit = 1;
      absl::StatusOr<client::ObjectList<ObjectPtr>> page = client_->List(*info, ns, latest);
      if (!page.ok()) {
        PrintError(page.status());
        return kExitError;
      }
      revision = page->resource_version;
    }
    return WatchAndPrint(*info, names.empty() ? ns : Namespace(), revision, names);
  }
  return exit_code;
}

// ---------------------------------------------------------------------------------------------
// delete

absl::StatusOr<client::DeleteOptions> Ctl::DeleteOptions() {
  client::DeleteOptions options;
  options.grace_period_seconds = flags_.grace_period;
  static const std::map<std::string, std::string> kPolicies = {
      {"background", "Background"}, {"true", "Background"}, {"foreground", "Foreground"},
      {"orphan", "Orphan"},         {"false", "Orphan"}};
  auto it = kPolicies.find(flags_.cascade);
  if (it == kPolicies.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid cascade value (", flags_.cascade,
        "). Must be \"background\", \"foreground\", or \"orphan\""));
  }
  options.propagation_policy = it->second;
  return options;
}

int Ctl::DeleteOne(const api::ResourceInfo& info, const std::string& ns, const std::string& name,
                   const client::DeleteOptions& options) {
  absl::StatusOr<std::string> deleted = client_->DeleteRaw(info, ns, name, apiv1::PROTOBUF, options);
  if (!deleted.ok()) {
    PrintError(deleted.status());
    return kExitError;
  }
  out_ << SingularResource(info) << " \"" << name << "\" deleted\n";
  return kExitOk;
}

int Ctl::Delete(const std::vector<std::string>& args) {
  absl::StatusOr<client::DeleteOptions> options = DeleteOptions();
  if (!options.ok()) {
    err_ << "error: " << options.status().message() << "\n";
    return kExitUsage;
  }
  int exit_code = kExitOk;
  if (!flags_.filenames.empty()) {
    if (!args.empty()) {
      err_ << "error: there is no need to specify a resource type as a separate argument when "
              "passing arguments in resource/name form or with -f\n";
      return kExitUsage;
    }
    for (const std::string& path : flags_.filenames) {
      absl::StatusOr<std::vector<Manifest>> manifests = ReadManifests(path, in_);
      if (!manifests.ok()) {
        err_ << "error: " << manifests.status().message() << "\n";
        return kExitError;
      }
      for (const Manifest& m : *manifests) {
        const api::ResourceInfo* info = ManifestResource(m.object, m.source);
        absl::StatusOr<std::string> ns =
            info ? ManifestNamespace(*info, m.object) : absl::StatusOr<std::string>("");
        if (info == nullptr || !ns.ok()) {
          if (!ns.ok()) err_ << "error: " << ns.status().message() << "\n";
          exit_code = kExitError;
          continue;
        }
        if (DeleteOne(*info, *ns, StringAt(m.object, "metadata", "name"), *options) != kExitOk) {
          exit_code = kExitError;
        }
      }
    }
    return exit_code;
  }
  if (args.empty()) {
    err_ << "error: You must provide one or more resources by argument or filename.\n" << kUsage;
    return kExitUsage;
  }
  std::string type = args[0];
  std::vector<std::string> names(args.begin() + 1, args.end());
  if (size_t slash = type.find('/'); slash != std::string::npos && names.empty()) {
    names.push_back(type.substr(slash + 1));
    type = type.substr(0, slash);
  }
  const api::ResourceInfo* info = Resolve(type);
  if (info == nullptr) return kExitError;
  if (names.empty()) {
    err_ << "error: resource(s) were provided, but no name was specified\n";
    return kExitUsage;
  }
  for (const std::string& name : names) {
    if (DeleteOne(*info, info->namespaced ? Namespace() : "", name, *options) != kExitOk) {
      exit_code = kExitError;
    }
  }
  return exit_code;
}

// ---------------------------------------------------------------------------------------------
// describe, api-resources, version

int Ctl::Describe(const std::vector<std::string>& args) {
  std::vector<std::string> rest = args;
  if (rest.size() == 1 && rest[0].find('/') != std::string::npos) {
    std::string both = rest[0];
    rest = {both.substr(0, both.find('/')), both.substr(both.find('/') + 1)};
  }
  if (rest.size() != 2) {
    err_ << "error: describe takes KIND NAME\n" << kUsage;
    return kExitUsage;
  }
  const api::ResourceInfo* info = Resolve(rest[0]);
  if (info == nullptr) return kExitError;
  std::string ns = info->namespaced ? Namespace() : "";
  absl::StatusOr<ObjectPtr> object = client_->Get(*info, ns, rest[1]);
  if (!object.ok()) {
    PrintError(object.status());
    return kExitError;
  }
  // Events about the object: in its namespace (cluster-scoped objects' events go to "default",
  // as Kubernetes' recorders put them).
  const api::ResourceInfo& events_info = *api::Scheme::BuiltIn().Lookup("events");
  client::ListOptions options;
  options.field_selector =
      absl::StrCat("involvedObject.name=", rest[1], ",involvedObject.kind=", info->kind);
  absl::StatusOr<client::ObjectList<ObjectPtr>> events =
      client_->List(events_info, info->namespaced ? ns : "", options);
  std::vector<const Message*> event_ptrs;
  if (events.ok()) {
    for (const ObjectPtr& e : events->items) event_ptrs.push_back(e.get());
  }
  out_ << capstanctl::Describe(*info, **object, event_ptrs, absl::Now());
  return kExitOk;
}

int Ctl::ApiResources() {
  absl::StatusOr<apiv1::DiscoveryResponse> discovery = client_->Discover();
  if (!discovery.ok()) {
    PrintError(discovery.status());
    return kExitError;
  }
  std::vector<Row> rows = {{"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"}};
  for (const apiv1::APIResource& r : discovery->resources()) {
    std::string api_version = r.group().empty() ? r.version() : absl::StrCat(r.group(), "/", r.version());
    rows.push_back({r.name(), absl::StrJoin(r.short_names(), ","), api_version,
                    r.namespaced() ? "true" : "false", r.kind()});
  }
  out_ << RenderTable(rows);
  return kExitOk;
}

int Ctl::Version() {
  out_ << "Client Version: " << kVersion << "\n";
  absl::StatusOr<apiv1::DiscoveryResponse> discovery = client_->Discover();
  if (!discovery.ok()) {
    PrintError(discovery.status());
    return kExitError;
  }
  out_ << "Server: " << server_ << " (" << discovery->resources_size() << " resource types)\n";
  return kExitOk;
}

absl::StatusOr<std::string> ServerAddress(const Flags& flags) {
  if (!flags.server.empty()) return flags.server;
  absl::StatusOr<client::Config> config =
      flags.config.empty() ? client::LoadConfig() : client::LoadConfigFile(flags.config);
  if (config.ok()) return config->server;
  // Like kubectl without a kubeconfig: fall back to the local default.
  if (flags.config.empty() && config.status().code() == absl::StatusCode::kNotFound) {
    return client::Config().server;
  }
  return config.status();
}

}  // namespace

absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& argv) {
  Invocation inv;
  bool positional_only = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (positional_only || arg == "-" || arg.size() < 2 || arg[0] != '-') {
      if (inv.command.empty()) {
        inv.command = arg;
      } else {
        inv.args.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      positional_only = true;
      continue;
    }
    bool is_short = arg[1] != '-';
    std::string body = arg.substr(is_short ? 1 : 2);
    std::string name = body, value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    } else if (is_short && body.size() > 1) {
      // -ndefault, -oyaml
      name = body.substr(0, 1);
      value = body.substr(1);
      has_value = true;
    }
    if (inv.command == "logs" && is_short && name == "f") {
      // kubectl: after `logs`, -f is --follow, not --filename.
      name = "follow";
      is_short = false;
    }
    const FlagSpec* spec = FindFlag(name, is_short);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", is_short ? "shorthand " : "", "flag: ", arg));
    }
    if (spec->kind == FlagKind::kString && !has_value) {
      if (i + 1 >= argv.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: ", arg));
      }
      value = argv[++i];
      has_value = true;
    }
    absl::Status s = SetFlag(*spec, value, has_value, &inv.flags);
    if (!s.ok()) return s;
  }
  return inv;
}

int Run(const std::vector<std::string>& argv, std::istream& in, std::ostream& out,
        std::ostream& err) {
  absl::StatusOr<Invocation> inv = ParseArgs(argv);
  if (!inv.ok()) {
    err << "error: " << inv.status().message() << "\n" << kUsage;
    return kExitUsage;
  }
  if (inv->flags.help || inv->command.empty() || inv->command == "help") {
    (inv->flags.help || inv->command == "help" ? out : err) << kUsage;
    return inv->flags.help || inv->command == "help" ? kExitOk : kExitUsage;
  }
  static const char* const kCommands[] = {"apply",         "get",     "delete", "describe",
                                          "api-resources", "version", "rollout", "logs"};
  if (std::find(std::begin(kCommands), std::end(kCommands), inv->command) == std::end(kCommands)) {
    err << "error: unknown command \"" << inv->command << "\" for \"capstanctl\"\n" << kUsage;
    return kExitUsage;
  }
  absl::StatusOr<std::string> server = ServerAddress(inv->flags);
  if (!server.ok()) {
    err << "error: " << server.status().message() << "\n";
    return kExitError;
  }
  Ctl ctl(inv->flags, *server, in, out, err);
  const std::string& c = inv->command;
  if (c == "apply") return ctl.Apply();
  if (c == "get") return ctl.Get(inv->args);
  if (c == "delete") return ctl.Delete(inv->args);
  if (c == "describe") return ctl.Describe(inv->args);
  if (c == "api-resources") return ctl.ApiResources();
  if (c == "rollout") return ctl.Rollout(inv->args);
  if (c == "logs") return ctl.Logs(inv->args);
  return ctl.Version();
}

}  // namespace capstan::capstanctl
