#include "server/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "server/access.h"
#include "server/state.h"
#include "server/web_assets.h"
#include "util/error.h"

namespace kexa::server {

namespace {

// Opens the checkpoint, the optional store and database, and starts the scheduler.
std::unique_ptr<ServerState> open_state(const ServerOptions& options) {
  auto st = std::make_unique<ServerState>();
  st->options = options;
  st->model_name = options.model_name.empty() ? std::filesystem::path(options.model_path).filename().string()
                                              : options.model_name;
  EngineOptions engine_options;
  engine_options.n_threads = options.threads;
  engine_options.mmproj = options.mmproj;
  engine_options.device = parse_device(options.device).value_or(Device::Auto);
  engine_options.gpu_layers = options.gpu_layers;
  engine_options.kv_type = parse_kv_type(options.cache_type).value_or(KVType::F32);
  st->engine = Engine::open(options.model_path, engine_options);
  if (!st->engine->model().device_note().empty()) {
    std::fprintf(stderr, "kexa serve: %s\n", st->engine->model().device_note().c_str());
  }
  if (!st->engine->has_chat_template()) {
    std::fprintf(stderr, "kexa serve: no chat template (%s); /v1/chat/completions is disabled\n",
                 st->engine->chat_template_error().c_str());
  }
  // Decoded now rather than by the first constrained request.
  st->engine->token_texts();
  if (!options.rag_store.empty()) {
    st->documents = std::make_unique<Documents>(options.rag_store, options.rag_uploads, options.max_document);
    std::fprintf(stderr, "kexa serve: document store %s (uploads in %s)\n", options.rag_store.c_str(),
                 st->documents->uploads_dir().c_str());
  }
  if (!options.sql_db.empty()) {
    st->database = sql::open_database(options.sql_db);
    std::fprintf(stderr, "kexa serve: database %s (%s, read-only)\n", options.sql_db.c_str(),
                 st->database->dialect().c_str());
  }
  if (!options.web_search.empty()) {
    st->web = std::make_unique<WebAccess>(options);
    std::fprintf(stderr, "kexa serve: web search %s\n", st->web->service().describe().c_str());
  }
  st->scheduler = std::make_unique<Scheduler>(st->engine->model(), options.parallel, options.context, options.queue);
  Metrics* metrics = &st->metrics;
  st->scheduler->on_step = [metrics](double seconds, int) { metrics->token_latency.observe(seconds); };
  return st;
}

// Connection handling, the API key check and errors for requests no route takes.
void configure_http(httplib::Server& svr, ServerState& st) {
  const ServerOptions& options = st.options;
  int http_threads = options.http_threads;
  svr.new_task_queue = [http_threads] { return new httplib::ThreadPool(static_cast<size_t>(http_threads)); };
  svr.set_payload_max_length(options.max_body);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  std::set<std::string> public_paths = {"/health"};
  for (const WebAsset& asset : web_assets()) public_paths.insert(std::string(asset.path));
  auto access = std::make_shared<AccessControl>(options.api_key, options.metrics_key, std::move(public_paths));
  svr.set_pre_routing_handler([access, &st](const httplib::Request& req, httplib::Response& res) {
    const AccessControl::Verdict verdict = access->check(req.path, req.get_header_value("Authorization"));
    if (verdict == AccessControl::Verdict::Allowed) return httplib::Server::HandlerResponse::Unhandled;
    const bool metrics = req.path == "/metrics" && !st.options.metrics_key.empty();
    const char* which = metrics ? "metrics key" : "API key";
    res.set_header("WWW-Authenticate", "Bearer");
    send_json(res, 401,
              error_body(verdict == AccessControl::Verdict::Missing
                             ? concat("missing ", which, " (send Authorization: Bearer KEY)")
                             : concat("invalid ", which),
                         "authentication_error", ""));
    st.metrics.count_request("unauthorized", 401);  // one label: paths a client invents stay out of the map
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = res.status == 413 ? "request body too large" : concat("no route for ", req.method, " ", req.path);
    send_json(res, res.status, error_body(msg, "invalid_request_error", ""));
  });
  install_generation_routes(svr, st);
  install_knowledge_routes(svr, st);
  install_web_routes(svr, st);
  install_utility_routes(svr, st);
}

int bind(httplib::Server& svr, const ServerOptions& options) {
  int port = options.port;
  if (port == 0) {
    port = svr.bind_to_any_port(options.host);
  } else if (!svr.bind_to_port(options.host, port)) {
    fail("cannot listen on ", options.host, ":", port);
  }
  if (port < 0) fail("cannot listen on ", options.host);
  return port;
}

}  // namespace

int serve(const ServerOptions& options) {
  // Signals go to one waiting thread, which stops the server: no handler, no global state.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<ServerState> st = open_state(options);
  httplib::Server svr;
  configure_http(svr, *st);
  int port = bind(svr, options);
  std::fprintf(stderr, "kexa serve: %s (%s) on %d slots x %lld tokens\n", st->model_name.c_str(),
               st->engine->model_type().c_str(), options.parallel, static_cast<long long>(options.context));
  std::fprintf(stderr, "kexa serve: listening on http://%s:%d\n", options.host.c_str(), port);
  std::fflush(stderr);

  std::thread signal_waiter([&svr, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    svr.stop();
  });
  bool ok = svr.listen_after_bind();
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  st->scheduler.reset();
  return ok ? 0 : 1;
}

}  // namespace kexa::server
