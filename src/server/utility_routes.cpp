// /v1/models, /tokenize, /detokenize, /apply-template, /health, /metrics and the web UI's files.
#include <httplib.h>

#include <span>

#include "chat/template.h"
#include "server/generation.h"
#include "server/request.h"
#include "server/state.h"
#include "server/web_assets.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace kexa::server {

namespace {

json tokenize(const Tokenizer& tok, const json& body) {
  const json* text = field(body, "content");
  if (text == nullptr) text = field(body, "text");
  if (text == nullptr || !text->is_string()) throw BadRequest{"'content' must be a string", "content"};
  bool add_special = bool_field(body, "add_special", false);
  bool parse_special = bool_field(body, "parse_special", true);
  auto ids = tok.encode(text->get<std::string>(), add_special, parse_special);
  json out = {{"tokens", ids}, {"count", ids.size()}};
  if (bool_field(body, "with_pieces", false)) {
    json pieces = json::array();
    for (int32_t id : ids) {
      // A piece that holds part of a character is given as its bytes (as llama.cpp's server
      // does): a JSON string cannot carry it.
      std::string piece = tok.decode(std::span<const int32_t>(&id, 1));
      size_t invalid = 0;
      (void)sanitize_utf8(piece, &invalid);
      json value = piece;
      if (invalid > 0) {
        value = json::array();
        for (unsigned char c : piece) value.push_back(static_cast<int>(c));
      }
      pieces.push_back({{"id", id}, {"piece", value}});
    }
    out["tokens"] = pieces;
  }
  return out;
}

json detokenize(const Tokenizer& tok, const json& body) {
  const json* tokens = field(body, "tokens");
  if (tokens == nullptr || !tokens->is_array()) throw BadRequest{"'tokens' must be an array of ids", "tokens"};
  std::vector<int32_t> ids;
  for (const auto& t : *tokens) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= tok.vocab_size()) {
      throw BadRequest{"'tokens' must hold ids inside the vocabulary", "tokens"};
    }
    ids.push_back(t.get<int32_t>());
  }
  return json{{"content", tok.decode(ids)}};
}

// The prompt the chat template renders for a chat body (what /v1/chat/completions would encode).
std::string render_prompt(const ServerState& st, const json& body, bool add_generation_prompt) {
  require_chat_template(st, "messages");
  std::vector<ImagePart> images;  // rendered as the template's placeholders, not decoded here
  json messages = normalize_messages(body, &images);
  json tools = tools_of(body);
  try {
    return st.engine->chat_template().render(messages, tools, add_generation_prompt, template_kwargs(body));
  } catch (const Error& e) {
    throw BadRequest{concat("the chat template failed: ", e.what()), "messages"};
  }
}

std::string metrics_text(const ServerState& st) {
  SchedulerStats s = st.scheduler->stats();
  const double kv_ratio =
      s.kv_bytes_total > 0 ? static_cast<double>(s.kv_bytes_used) / static_cast<double>(s.kv_bytes_total) : 0.0;
  std::vector<std::pair<std::string, double>> gauges = {
      {"kexa_sequences_active", static_cast<double>(s.active)},
      {"kexa_sequences_queued", static_cast<double>(s.queued)},
      {"kexa_slots_total", static_cast<double>(s.slots)},
      {"kexa_kv_cache_used_bytes", static_cast<double>(s.kv_bytes_used)},
      {"kexa_kv_cache_total_bytes", static_cast<double>(s.kv_bytes_total)},
      {"kexa_kv_cache_usage_ratio", kv_ratio},
      {"kexa_batch_steps_total", static_cast<double>(s.steps)},
      // Prompt tokens the scheduler evaluated: the n choices of a request share one prefill.
      {"kexa_prompt_tokens_evaluated_total", static_cast<double>(s.tokens_prompt)},
  };
  return st.metrics.render(gauges) + (st.web ? st.web->render_metrics() : "");
}

}  // namespace

void install_utility_routes(httplib::Server& svr, ServerState& st) {
  svr.Get("/v1/models", guarded(st, "/v1/models", [&st](const auto&, auto& res) {
            json m = {{"id", st.model_name}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "kexa"},
                      {"meta", {{"context", st.options.context}, {"vocab_size", st.engine->vocab_size()},
                                {"architecture", st.engine->model_type()}}}};
            send_json(res, 200, json{{"object", "list"}, {"data", json::array({m})}});
          }));
  svr.Post("/tokenize", guarded(st, "/tokenize", [&st](const auto& req, auto& res) {
             send_json(res, 200, tokenize(st.engine->tokenizer(), parse_body(req.body)));
           }));
  svr.Post("/detokenize", guarded(st, "/detokenize", [&st](const auto& req, auto& res) {
             send_json(res, 200, detokenize(st.engine->tokenizer(), parse_body(req.body)));
           }));
  svr.Post("/apply-template", guarded(st, "/apply-template", [&st](const auto& req, auto& res) {
             json body = parse_body(req.body);
             bool agp = bool_field(body, "add_generation_prompt", true);
             send_json(res, 200, json{{"prompt", render_prompt(st, body, agp)}});
           }));
  svr.Get("/health", guarded(st, "/health", [](const auto&, auto& res) { send_json(res, 200, json{{"status", "ok"}}); }));
  svr.Get("/metrics", [&st](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(st), "text/plain; version=0.0.4");
  });
  for (const WebAsset& asset : web_assets()) {
    svr.Get(std::string(asset.path), [asset](const httplib::Request&, httplib::Response& res) {
      // The UI renders model output that documents and web pages can steer: should markup ever
      // get past its sanitiser, the browser still runs no script, loads nothing from elsewhere,
      // and sends nothing to another address.
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                     "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                     "frame-ancestors 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_content(std::string(asset.data, asset.size), asset.content_type);
    });
  }
}

}  // namespace kexa::server
