#include "server/state.h"

#include <httplib.h>

#include <chrono>
#include <exception>
#include <random>

#include "server/request.h"
#include "util/error.h"

namespace kexa::server {

json error_body(const std::string& message, const std::string& type, const std::string& param) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  return json{{"error", e}};
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += hex[rng() % 16];
  return id;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::function<void(const httplib::Request&, httplib::Response&)> guarded(ServerState& st, std::string endpoint, Route fn) {
  return [&st, endpoint, fn](const httplib::Request& req, httplib::Response& res) {
    try {
      fn(req, res);
    } catch (const BadRequest& e) {
      send_json(res, e.status, error_body(e.message, e.type, e.param));
    } catch (const GenerationBackend::Busy&) {
      send_json(res, 429, error_body("the server is busy: request queue is full, retry later", "rate_limit_error", ""));
    } catch (const Error& e) {
      send_json(res, 400, error_body(e.what(), "invalid_request_error", ""));
    } catch (const std::exception& e) {
      send_json(res, 500, error_body(std::string("internal error: ") + e.what(), "server_error", ""));
    }
    st.metrics.count_request(endpoint, res.status);
  };
}

}  // namespace kexa::server
