// What every route of `kexa serve` shares: the opened checkpoint, the scheduler that runs every
// generation (chats, completions, grounded answers, text-to-SQL), the metrics and the optional
// document store and database; and the helpers that shape HTTP answers. The routes are installed
// by concern: generation (server/generation.cpp), knowledge (server/knowledge_routes.cpp) and the
// rest (server/utility_routes.cpp); server.cpp sets them up and serves.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "server/knowledge.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/web_routes.h"
#include "sql/sql.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace kexa::server {

struct ServerState {
  ServerOptions options;
  std::string model_name;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Scheduler> scheduler;
  Metrics metrics;
  std::unique_ptr<Documents> documents;     // --rag-store
  std::unique_ptr<sql::Executor> database;  // --sql-db
  std::mutex database_mu;                   // an Executor is one connection
  std::unique_ptr<WebAccess> web;           // --web-search
};

nlohmann::ordered_json error_body(const std::string& message, const std::string& type, const std::string& param);
void send_json(httplib::Response& res, int status, const nlohmann::ordered_json& body);
// prefix + 24 random hex digits.
std::string random_id(const char* prefix);
int64_t unix_time();

// Runs a route: BadRequest and kexa::Error become OpenAI error bodies (a full scheduler queue a
// 429), anything else a 500; every request is counted under `endpoint`.
using Route = std::function<void(const httplib::Request&, httplib::Response&)>;
std::function<void(const httplib::Request&, httplib::Response&)> guarded(ServerState& st, std::string endpoint, Route fn);

void install_generation_routes(httplib::Server& svr, ServerState& st);
void install_knowledge_routes(httplib::Server& svr, ServerState& st);
void install_utility_routes(httplib::Server& svr, ServerState& st);
// (install_web_routes: server/web_routes.h)

}  // namespace kexa::server
