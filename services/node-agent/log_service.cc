#include "services/node-agent/log_service.h"

#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "lib/api/errors.h"

namespace capstan::nodeagent {

using capstan::nodeagent::v1::LogsChunk;
using capstan::nodeagent::v1::LogsRequest;

std::string LastLines(const std::string& text, int64_t n) {
  if (n <= 0) return text;
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;  // a final newline does not start a line
  size_t pos = end;
  for (int64_t lines = 0; lines < n; ++lines) {
    size_t nl = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
  }
  return text.substr(pos + 1);
}

grpc::Status LogService::Logs(grpc::ServerContext* context, const LogsRequest* request,
                              grpc::ServerWriter<LogsChunk>* writer) {
  const std::string ns = request->namespace_().empty() ? "default" : request->namespace_();
  absl::Status last = absl::NotFoundError(absl::StrCat("pods \"", request->pod(), "\" not found"));
  std::string path;
  NodeAgent* agent = nullptr;
  std::vector<NodeAgent*> agents;
  {
    absl::MutexLock lock(&mu_);
    agents = agents_;
  }
  if (agents.empty()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the node agent is starting");
  for (NodeAgent* a : agents) {
    absl::StatusOr<std::string> found = a->LogPath(ns, request->pod(), request->container(), request->previous());
    if (found.ok()) {
      path = *found;
      agent = a;
      break;
    }
    if (!absl::IsNotFound(found.status()) ||
        found.status().message().find("not found on node") == absl::string_view::npos) {
      last = found.status();  // the pod is here, but the request is wrong
    }
  }
  if (agent == nullptr) return api::ToGrpcStatus(last);

  std::ifstream in(path, std::ios::binary);
  if (!in) {
    // The container has not written anything yet (or not started): an empty log, as kubectl shows.
    if (!request->follow()) return grpc::Status::OK;
  }
  std::stringstream all;
  all << in.rdbuf();
  LogsChunk chunk;
  chunk.set_data(LastLines(all.str(), request->tail_lines()));
  if (!chunk.data().empty() && !writer->Write(chunk)) return grpc::Status::OK;
  if (!request->follow() || request->previous()) return grpc::Status::OK;

  // Follow: poll the file for growth until the container stops writing or the client goes.
  std::streamoff offset = static_cast<std::streamoff>(all.str().size());
  char buf[64 * 1024];
  while (!context->IsCancelled()) {
    const bool may_write = agent->ContainerMayWrite(ns, request->pod(), request->container());
    std::ifstream f(path, std::ios::binary);
    bool wrote = false;
    if (f) {
      f.seekg(offset);
      while (f.read(buf, sizeof(buf)) || f.gcount() > 0) {
        chunk.set_data(buf, static_cast<size_t>(f.gcount()));
        offset += f.gcount();
        wrote = true;
        if (!writer->Write(chunk)) return grpc::Status::OK;
      }
    }
    if (!may_write && !wrote) break;  // read to the end after it stopped: done
    if (!wrote) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return grpc::Status::OK;
}

}  // namespace capstan::nodeagent
