#include "tools/capstanctl/printers.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/api/codec.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"

namespace capstan::capstanctl {
namespace {

using capstan::apps::v1::Deployment;
using capstan::apps::v1::ReplicaSet;
using capstan::core::v1::Event;
using capstan::core::v1::Namespace;
using capstan::core::v1::Node;
using capstan::core::v1::Pod;
using capstan::core::v1::PodTemplateSpec;
using capstan::meta::v1::LabelSelector;
using capstan::meta::v1::Time;
using google::protobuf::Message;

constexpr char kNone[] = "<none>";

absl::Time ToTime(const Time& t) { return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()); }
bool IsSet(const Time& t) { return t.seconds() != 0 || t.nanos() != 0; }

std::string OrNone(const std::string& s) { return s.empty() ? kNone : s; }

// metav1.FormatLabelSelector: "app=nginx,tier in (api,web)".
std::string FormatSelector(const LabelSelector& selector) {
  std::vector<std::string> parts;
  std::map<std::string, std::string> labels(selector.match_labels().begin(),
                                            selector.match_labels().end());
  for (const auto& [k, v] : labels) parts.push_back(absl::StrCat(k, "=", v));
  for (const auto& e : selector.match_expressions()) {
    std::vector<std::string> values(e.values().begin(), e.values().end());
    std::sort(values.begin(), values.end());
    if (e.operator_() == "In") {
      parts.push_back(absl::StrCat(e.key(), " in (", absl::StrJoin(values, ","), ")"));
    } else if (e.operator_() == "NotIn") {
      parts.push_back(absl::StrCat(e.key(), " notin (", absl::StrJoin(values, ","), ")"));
    } else if (e.operator_() == "Exists") {
      parts.push_back(e.key());
    } else if (e.operator_() == "DoesNotExist") {
      parts.push_back(absl::StrCat("!", e.key()));
    }
  }
  return parts.empty() ? kNone : absl::StrJoin(parts, ",");
}

void AddContainersAndImages(const PodTemplateSpec& tmpl, Row* row) {
  std::vector<std::string> names, images;
  for (const auto& c : tmpl.spec().containers()) {
    names.push_back(c.name());
    images.push_back(c.image());
  }
  row->push_back(OrNone(absl::StrJoin(names, ",")));
  row->push_back(OrNone(absl::StrJoin(images, ",")));
}

// kubectl's printPod: the most telling reason among the pod's and its containers'.
struct PodSummary {
  int ready = 0;
  int total = 0;
  std::string status;
  int restarts = 0;
};

PodSummary Summarize(const Pod& pod) {
  PodSummary s;
  s.total = pod.spec().containers_size();
  s.status = pod.status().phase().empty() ? "Pending" : pod.status().phase();
  if (!pod.status().reason().empty()) s.status = pod.status().reason();

  bool initializing = false;
  const auto& init = pod.status().init_container_statuses();
  for (int i = 0; i < init.size(); ++i) {
    const auto& c = init[i];
    s.restarts += c.restart_count();
    const auto& state = c.state();
    if (state.has_terminated() && state.terminated().exit_code() == 0) continue;
    if (state.has_terminated()) {
      const auto& t = state.terminated();
      s.status = !t.reason().empty() ? absl::StrCat("Init:", t.reason())
                 : t.signal() != 0   ? absl::StrCat("Init:Signal:", t.signal())
                                     : absl::StrCat("Init:ExitCode:", t.exit_code());
    } else if (state.has_waiting() && !state.waiting().reason().empty() &&
               state.waiting().reason() != "PodInitializing") {
      s.status = absl::StrCat("Init:", state.waiting().reason());
    } else {
      s.status = absl::StrCat("Init:", i, "/", pod.spec().init_containers_size());
    }
    initializing = true;
    break;
  }
  if (!initializing) {
    s.restarts = 0;
    bool running = false;
    const auto& statuses = pod.status().container_statuses();
    for (int i = statuses.size() - 1; i >= 0; --i) {
      const auto& c = statuses[i];
      s.restarts += c.restart_count();
      const auto& state = c.state();
      if (state.has_waiting() && !state.waiting().reason().empty()) {
        s.status = state.waiting().reason();
      } else if (state.has_terminated() && !state.terminated().reason().empty()) {
        s.status = state.terminated().reason();
      } else if (state.has_terminated()) {
        s.status = state.terminated().signal() != 0
                       ? absl::StrCat("Signal:", state.terminated().signal())
                       : absl::StrCat("ExitCode:", state.terminated().exit_code());
      } else if (c.ready() && state.has_running()) {
        running = true;
        ++s.ready;
      }
    }
    if (s.status == "Completed" && running) s.status = "Running";
  }
  if (pod.metadata().has_deletion_timestamp()) s.status = "Terminating";
  return s;
}

std::string NodeStatus(const Node& node) {
  std::string status = "Unknown";
  for (const auto& c : node.status().conditions()) {
    if (c.type() == "Ready") status = c.status() == "True" ? "Ready" : "NotReady";
  }
  if (node.spec().unschedulable()) absl::StrAppend(&status, ",SchedulingDisabled");
  return status;
}

std::string NodeRoles(const Node& node) {
  constexpr absl::string_view kPrefix = "node-role.kubernetes.io/";
  std::vector<std::string> roles;
  for (const auto& [k, v] : node.metadata().labels()) {
    if (absl::StartsWith(k, kPrefix) && k.size() > kPrefix.size()) {
      roles.push_back(k.substr(kPrefix.size()));
    } else if (k == "kubernetes.io/role" && !v.empty()) {
      roles.push_back(v);
    }
  }
  std::sort(roles.begin(), roles.end());
  return roles.empty() ? kNone : absl::StrJoin(roles, ",");
}

std::string NodeAddress(const Node& node, absl::string_view type) {
  for (const auto& a : node.status().addresses()) {
    if (a.type() == type) return a.address();
  }
  return kNone;
}

// The newest of an event's times, as kubectl's LAST SEEN column shows.
Time EventLastSeen(const Event& event) {
  if (event.has_series() && event.series().last_observed_time().seconds() != 0) {
    Time t;
    t.set_seconds(event.series().last_observed_time().seconds());
    return t;
  }
  if (IsSet(event.last_timestamp())) return event.last_timestamp();
  if (event.event_time().seconds() != 0) {
    Time t;
    t.set_seconds(event.event_time().seconds());
    return t;
  }
  return event.metadata().creation_timestamp();
}

std::string LowerKind(const std::string& kind) {
  std::string lower = kind;
  for (char& c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return lower;
}

std::string FormatTimestamp(const Time& t) {
  if (!IsSet(t)) return kNone;
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S %z", ToTime(t), absl::UTCTimeZone());
}

// --- describe ---------------------------------------------------------------------------------

// Lines of "Key:  value", values aligned within each run of fields at the same indentation;
// a value with several lines continues under the first.
class DescribeWriter {
 public:
  void Field(int indent, const std::string& key, std::vector<std::string> values) {
    if (values.empty()) values.push_back(kNone);
    lines_.push_back({indent, key + ":", std::move(values), true});
  }
  void Field(int indent, const std::string& key, const std::string& value) {
    Field(indent, key, std::vector<std::string>{value.empty() ? std::string(kNone) : value});
  }
  void Text(int indent, const std::string& text) { lines_.push_back({indent, text, {}, false}); }

  std::string Render() const {
    std::string out;
    size_t i = 0;
    while (i < lines_.size()) {
      if (!lines_[i].field) {
        absl::StrAppend(&out, std::string(lines_[i].indent, ' '), lines_[i].key, "\n");
        ++i;
        continue;
      }
      size_t end = i;
      size_t width = 0;
      while (end < lines_.size() && lines_[end].field && lines_[end].indent == lines_[i].indent) {
        width = std::max(width, lines_[end].key.size());
        ++end;
      }
      for (; i < end; ++i) {
        const Line& l = lines_[i];
        std::string pad(l.indent, ' ');
        absl::StrAppend(&out, pad, l.key, std::string(width - l.key.size() + 2, ' '), l.values[0],
                        "\n");
        for (size_t v = 1; v < l.values.size(); ++v) {
          absl::StrAppend(&out, pad, std::string(width + 2, ' '), l.values[v], "\n");
        }
      }
    }
    return out;
  }

 private:
  struct Line {
    int indent;
    std::string key;
    std::vector<std::string> values;
    bool field;
  };
  std::vector<Line> lines_;
};

std::vector<std::string> MapLines(const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  std::vector<std::string> lines;
  for (const auto& [k, v] : sorted) lines.push_back(absl::StrCat(k, "=", v));
  return lines;
}

template <typename Conditions>
void DescribeConditions(const Conditions& conditions, DescribeWriter* w) {
  if (conditions.empty()) return;
  std::vector<Row> rows = {{"Type", "Status", "Reason"}};
  for (const auto& c : conditions) rows.push_back({c.type(), c.status(), OrNone(c.reason())});
  w->Text(0, "Conditions:");
  for (absl::string_view line : absl::StrSplit(RenderTable(rows), '\n', absl::SkipEmpty())) {
    w->Text(2, std::string(line));
  }
}

void DescribeTemplate(const PodTemplateSpec& tmpl, DescribeWriter* w) {
  w->Text(0, "Pod Template:");
  w->Field(2, "Labels", MapLines(tmpl.metadata().labels()));
  w->Text(2, "Containers:");
  for (const auto& c : tmpl.spec().containers()) {
    w->Text(3, c.name() + ":");
    w->Field(4, "Image", c.image());
    std::vector<std::string> ports;
    for (const auto& p : c.ports()) {
      ports.push_back(absl::StrCat(p.container_port(), "/", p.protocol().empty() ? "TCP" : p.protocol()));
    }
    w->Field(4, "Port", absl::StrJoin(ports, ", "));
  }
}

void DescribePod(const Pod& pod, DescribeWriter* w) {
  PodSummary s = Summarize(pod);
  std::string node = pod.spec().node_name();
  if (!node.empty() && !pod.status().host_ip().empty()) absl::StrAppend(&node, "/", pod.status().host_ip());
  w->Field(0, "Node", node);
  w->Field(0, "Status", s.status);
  w->Field(0, "IP", pod.status().pod_ip());
  w->Field(0, "QoS Class", pod.status().qos_class());
  w->Text(0, "Containers:");
  for (const auto& c : pod.spec().containers()) {
    w->Text(2, c.name() + ":");
    w->Field(4, "Image", c.image());
    for (const auto& cs : pod.status().container_statuses()) {
      if (cs.name() != c.name()) continue;
      std::string state = cs.state().has_running()      ? "Running"
                          : cs.state().has_terminated() ? "Terminated"
                          : cs.state().has_waiting()    ? "Waiting"
                                                        : "Unknown";
      w->Field(4, "State", state);
      w->Field(4, "Ready", cs.ready() ? "True" : "False");
      w->Field(4, "Restart Count", absl::StrCat(cs.restart_count()));
    }
  }
  DescribeConditions(pod.status().conditions(), w);
}

void DescribeDeployment(const Deployment& d, DescribeWriter* w) {
  w->Field(0, "Selector", FormatSelector(d.spec().selector()));
  const auto& st = d.status();
  w->Field(0, "Replicas",
           absl::StrFormat("%d desired | %d updated | %d total | %d available | %d unavailable",
                           d.spec().has_replicas() ? d.spec().replicas() : 1, st.updated_replicas(),
                           st.replicas(), st.available_replicas(), st.unavailable_replicas()));
  w->Field(0, "StrategyType", d.spec().strategy().type());
  w->Field(0, "MinReadySeconds", absl::StrCat(d.spec().min_ready_seconds()));
  DescribeTemplate(d.spec().template_(), w);
  DescribeConditions(st.conditions(), w);
}

void DescribeReplicaSet(const ReplicaSet& rs, DescribeWriter* w) {
  w->Field(0, "Selector", FormatSelector(rs.spec().selector()));
  std::vector<std::string> owners;
  for (const auto& o : rs.metadata().owner_references()) owners.push_back(absl::StrCat(o.kind(), "/", o.name()));
  w->Field(0, "Controlled By", absl::StrJoin(owners, ", "));
  w->Field(0, "Replicas",
           absl::StrFormat("%d current / %d desired", rs.status().replicas(),
                           rs.spec().has_replicas() ? rs.spec().replicas() : 1));
  DescribeTemplate(rs.spec().template_(), w);
  DescribeConditions(rs.status().conditions(), w);
}

void DescribeNode(const Node& node, DescribeWriter* w) {
  w->Field(0, "Roles", NodeRoles(node));
  w->Field(0, "Unschedulable", node.spec().unschedulable() ? "true" : "false");
  std::vector<std::string> taints;
  for (const auto& t : node.spec().taints()) {
    taints.push_back(absl::StrCat(t.key(), t.value().empty() ? "" : "=", t.value(), ":", t.effect()));
  }
  w->Field(0, "Taints", taints);
  DescribeConditions(node.status().conditions(), w);
  std::vector<std::string> addresses;
  for (const auto& a : node.status().addresses()) addresses.push_back(absl::StrCat(a.type(), ": ", a.address()));
  w->Field(0, "Addresses", addresses);
  auto quantities = [](const google::protobuf::Map<std::string, capstan::meta::v1::Quantity>& m) {
    std::map<std::string, std::string> sorted;
    for (const auto& [k, v] : m) sorted[k] = v.string();
    std::vector<std::string> lines;
    for (const auto& [k, v] : sorted) lines.push_back(absl::StrCat(k, ": ", v));
    return lines;
  };
  w->Field(0, "Capacity", quantities(node.status().capacity()));
  w->Field(0, "Allocatable", quantities(node.status().allocatable()));
  w->Field(0, "Kubelet Version", node.status().node_info().kubelet_version());
}

}  // namespace

std::string FormatAge(absl::Duration d) {
  int64_t seconds = absl::ToInt64Seconds(d);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return absl::StrCat(seconds, "s");
  int64_t minutes = seconds / 60;
  if (minutes < 10) {
    int64_t s = seconds % 60;
    return s == 0 ? absl::StrCat(minutes, "m") : absl::StrCat(minutes, "m", s, "s");
  }
  if (minutes < 60 * 3) return absl::StrCat(minutes, "m");
  int64_t hours = minutes / 60;
  if (hours < 8) {
    int64_t m = minutes % 60;
    return m == 0 ? absl::StrCat(hours, "h") : absl::StrCat(hours, "h", m, "m");
  }
  if (hours < 48) return absl::StrCat(hours, "h");
  if (hours < 24 * 8) {
    int64_t h = hours % 24;
    return h == 0 ? absl::StrCat(hours / 24, "d") : absl::StrCat(hours / 24, "d", h, "h");
  }
  if (hours < 24 * 365 * 2) return absl::StrCat(hours / 24, "d");
  if (hours < 24 * 365 * 8) {
    int64_t days = (hours / 24) % 365;
    return days == 0 ? absl::StrCat(hours / 24 / 365, "y")
                     : absl::StrCat(hours / 24 / 365, "y", days, "d");
  }
  return absl::StrCat(hours / 24 / 365, "y");
}

std::string AgeOf(const Time& timestamp, absl::Time now) {
  if (!IsSet(timestamp)) return "<unknown>";
  return FormatAge(now - ToTime(timestamp));
}

Row TableHeader(const api::ResourceInfo& info, const TableOptions& options) {
  Row row;
  if (options.with_namespace && info.namespaced) row.push_back("NAMESPACE");
  const std::string& r = info.resource;
  if (r == "pods") {
    row.insert(row.end(), {"NAME", "READY", "STATUS", "RESTARTS", "AGE"});
    if (options.wide) row.insert(row.end(), {"IP", "NODE"});
  } else if (r == "deployments" && info.group == "apps") {
    row.insert(row.end(), {"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"});
    if (options.wide) row.insert(row.end(), {"CONTAINERS", "IMAGES", "SELECTOR"});
  } else if (r == "replicasets" && info.group == "apps") {
    row.insert(row.end(), {"NAME", "DESIRED", "CURRENT", "READY", "AGE"});
    if (options.wide) row.insert(row.end(), {"CONTAINERS", "IMAGES", "SELECTOR"});
  } else if (r == "nodes") {
    row.insert(row.end(), {"NAME", "STATUS", "ROLES", "AGE", "VERSION"});
    if (options.wide) row.insert(row.end(), {"INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                                                      "CONTAINER-RUNTIME"});
  } else if (r == "namespaces") {
    row.insert(row.end(), {"NAME", "STATUS", "AGE"});
  } else if (r == "events") {
    row.insert(row.end(), {"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"});
  } else {
    row.insert(row.end(), {"NAME", "AGE"});
  }
  return row;
}

Row TableRow(const api::ResourceInfo& info, const Message& object, const TableOptions& options) {
  const auto& meta = api::Meta(object);
  Row row;
  if (options.with_namespace && info.namespaced) row.push_back(meta.namespace_());
  std::string age = AgeOf(meta.creation_timestamp(), options.now);
  if (const auto* pod = dynamic_cast<const Pod*>(&object)) {
    PodSummary s = Summarize(*pod);
    row.insert(row.end(), {meta.name(), absl::StrCat(s.ready, "/", s.total), s.status,
                           absl::StrCat(s.restarts), age});
    if (options.wide) row.insert(row.end(), {OrNone(pod->status().pod_ip()), OrNone(pod->spec().node_name())});
  } else if (const auto* d = dynamic_cast<const Deployment*>(&object)) {
    int desired = d->spec().has_replicas() ? d->spec().replicas() : 1;
    row.insert(row.end(), {meta.name(), absl::StrCat(d->status().ready_replicas(), "/", desired),
                           absl::StrCat(d->status().updated_replicas()),
                           absl::StrCat(d->status().available_replicas()), age});
    if (options.wide) {
      AddContainersAndImages(d->spec().template_(), &row);
      row.push_back(FormatSelector(d->spec().selector()));
    }
  } else if (const auto* rs = dynamic_cast<const ReplicaSet*>(&object)) {
    int desired = rs->spec().has_replicas() ? rs->spec().replicas() : 1;
    row.insert(row.end(), {meta.name(), absl::StrCat(desired), absl::StrCat(rs->status().replicas()),
                           absl::StrCat(rs->status().ready_replicas()), age});
    if (options.wide) {
      AddContainersAndImages(rs->spec().template_(), &row);
      row.push_back(FormatSelector(rs->spec().selector()));
    }
  } else if (const auto* node = dynamic_cast<const Node*>(&object)) {
    row.insert(row.end(), {meta.name(), NodeStatus(*node), NodeRoles(*node), age,
                           OrNone(node->status().node_info().kubelet_version())});
    if (options.wide) {
      row.insert(row.end(), {NodeAddress(*node, "InternalIP"), NodeAddress(*node, "ExternalIP"),
                             OrNone(node->status().node_info().os_image()),
                             OrNone(node->status().node_info().kernel_version()),
                             OrNone(node->status().node_info().container_runtime_version())});
    }
  } else if (const auto* ns = dynamic_cast<const Namespace*>(&object)) {
    row.insert(row.end(), {meta.name(), OrNone(ns->status().phase()), age});
  } else if (const auto* ev = dynamic_cast<const Event*>(&object)) {
    const auto& involved = ev->involved_object();
    row.insert(row.end(), {AgeOf(EventLastSeen(*ev), options.now), ev->type(), ev->reason(),
                           absl::StrCat(LowerKind(involved.kind()), "/", involved.name()),
                           ev->message()});
  } else {
    row.insert(row.end(), {meta.name(), age});
  }
  return row;
}

std::string RenderTable(const std::vector<Row>& rows, std::vector<size_t>* carried) {
  std::vector<size_t> local;
  std::vector<size_t>& widths = carried != nullptr ? *carried : local;
  for (const Row& row : rows) {
    if (row.size() > widths.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const Row& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out += std::string(std::max<size_t>(6, widths[i] + 3) - row[i].size(), ' ');
    }
    out += "\n";
  }
  return out;
}

std::string SingularResource(const api::ResourceInfo& info) {
  return info.group.empty() ? info.singular : absl::StrCat(info.singular, ".", info.group);
}

std::string TypedName(const api::ResourceInfo& info, const std::string& name) {
  return absl::StrCat(SingularResource(info), "/", name);
}

nlohmann::json ObjectJson(const api::ResourceInfo& info, const Message& object) {
  std::unique_ptr<Message> copy(object.New());
  copy->CopyFrom(object);
  api::SetTypeMeta(info, copy.get());
  return api::MessageToJson(*copy);
}

nlohmann::json ListJson(std::vector<nlohmann::json> items) {
  nlohmann::json list = nlohmann::json::object();
  list["apiVersion"] = "v1";
  list["items"] = nlohmann::json(std::move(items));
  list["kind"] = "List";
  list["metadata"] = {{"resourceVersion", ""}};
  return list;
}

std::string Describe(const api::ResourceInfo& info, const Message& object,
                     const std::vector<const Message*>& events, absl::Time now) {
  const auto& meta = api::Meta(object);
  DescribeWriter w;
  w.Field(0, "Name", meta.name());
  if (info.namespaced) w.Field(0, "Namespace", meta.namespace_());
  w.Field(0, "Labels", MapLines(meta.labels()));
  std::vector<std::string> annotations;
  for (const std::string& line : MapLines(meta.annotations())) {
    // The last-applied manifest is long and repeats the object: kubectl leaves it out too.
    if (!absl::StartsWith(line, "kubectl.kubernetes.io/last-applied-configuration=")) {
      annotations.push_back(line);
    }
  }
  w.Field(0, "Annotations", annotations);
  w.Field(0, "CreationTimestamp", FormatTimestamp(meta.creation_timestamp()));
  if (meta.has_deletion_timestamp()) {
    w.Field(0, "DeletionTimestamp", FormatTimestamp(meta.deletion_timestamp()));
  }
  if (const auto* pod = dynamic_cast<const Pod*>(&object)) DescribePod(*pod, &w);
  if (const auto* d = dynamic_cast<const Deployment*>(&object)) DescribeDeployment(*d, &w);
  if (const auto* rs = dynamic_cast<const ReplicaSet*>(&object)) DescribeReplicaSet(*rs, &w);
  if (const auto* node = dynamic_cast<const Node*>(&object)) DescribeNode(*node, &w);
  std::string out = w.Render();

  std::vector<const Event*> sorted;
  for (const Message* m : events) {
    if (const auto* e = dynamic_cast<const Event*>(m)) sorted.push_back(e);
  }
  std::stable_sort(sorted.begin(), sorted.end(), [](const Event* a, const Event* b) {
    return EventLastSeen(*a).seconds() < EventLastSeen(*b).seconds();
  });
  if (sorted.empty()) {
    absl::StrAppend(&out, "Events:  <none>\n");
    return out;
  }
  std::vector<Row> rows = {{"Type", "Reason", "Age", "From", "Message"},
                           {"----", "------", "----", "----", "-------"}};
  for (const Event* e : sorted) {
    std::string from = e->source().component().empty() ? e->reporting_component() : e->source().component();
    rows.push_back({e->type(), e->reason(), AgeOf(EventLastSeen(*e), now), from, e->message()});
  }
  absl::StrAppend(&out, "Events:\n");
  for (absl::string_view line : absl::StrSplit(RenderTable(rows), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

}  // namespace capstan::capstanctl
