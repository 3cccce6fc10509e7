#include "server/generation.h"

#include <httplib.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "runtime/engine.h"
#include "runtime/text_constraint.h"
#include "server/images.h"
#include "server/knowledge_routes.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace kexa::server {

namespace {

// A job already in the scheduler's queue, run by run_turn. Submitting before run_turn lets a full
// queue be a 429, and a prompt the scheduler refuses a 400, before a stream's headers are sent.
class QueuedJob final : public GenerationBackend {
 public:
  QueuedJob(std::shared_ptr<JobHandle> handle, int64_t context) : handle_(std::move(handle)), context_(context) {}
  // A consumer that leaves early (an exception, a closed connection) frees the slot.
  ~QueuedJob() override { handle_->cancel(); }
  int64_t context() const override { return context_; }
  // `job` is the one already queued.
  JobEnd run(Job job, const std::function<bool(const JobEvent&)>& on_event) override {
    (void)job;
    return handle_->follow(on_event);
  }

 private:
  std::shared_ptr<JobHandle> handle_;
  int64_t context_;
};

// Queues the jobs as one group (one job: a plain request): 429 when the queue is full, 400 when
// the scheduler refuses them.
std::vector<std::shared_ptr<JobHandle>> submit_or_throw(ServerState& st, std::vector<Job> jobs) {
  std::vector<std::shared_ptr<JobHandle>> handles;
  try {
    handles = st.scheduler->submit_group(std::move(jobs));
  } catch (const Error& e) {
    throw BadRequest{e.what(), "messages"};
  }
  if (handles.empty()) throw BadRequest{"the server is busy: request queue is full, retry later", "", 429, "rate_limit_error"};
  return handles;
}

// The token filter of response_format or of a forced tool call (the latter depends on whether
// the prompt opened a reasoning block, known once the turn is prepared); empty when neither.
std::function<std::shared_ptr<TokenFilter>(const PreparedTurn&)> filter_maker(const Engine& engine,
                                                                              const GenerationRequest& g) {
  if (g.response_format) {
    std::shared_ptr<JsonConstraint> constraint = g.response_format;
    return [&engine, constraint](const PreparedTurn&) {
      return constrain_text(constraint, engine.token_texts(), engine.stop_ids());
    };
  }
  if (g.forced_calls.empty()) return {};
  return [&engine, functions = g.forced_calls, multiple = g.multiple_calls,
          param = g.max_tokens_param](const PreparedTurn& turn) {
    auto constraint = std::make_shared<ToolCallConstraint>(functions, multiple, turn.reasoning_open);
    const int64_t max_tokens = turn.job.options.max_tokens;
    if (static_cast<size_t>(max_tokens) < constraint->min_completion()) {
      throw BadRequest{concat("max_tokens is ", max_tokens, " but a forced tool call may need ",
                              constraint->min_completion(), " tokens"),
                       param};
    }
    return constrain_text(constraint, engine.token_texts(), engine.stop_ids());
  };
}

// One token's text for a JSON string field. A token may hold part of a character (byte-level BPE
// splits multi-byte characters): its invalid bytes show as U+FFFD, as OpenAI shows them; the exact
// bytes are in the chat entries' "bytes" array.
std::string token_text(const Tokenizer& tok, int32_t id) {
  return sanitize_utf8(tok.decode(std::span<const int32_t>(&id, 1)));
}

json logprob_json(const Tokenizer& tok, const TokenLogprob& lp) {
  auto entry = [&](int32_t id, float logprob) {
    std::string text = tok.decode(std::span<const int32_t>(&id, 1));
    json bytes = json::array();
    for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
    return json{{"token", sanitize_utf8(text)}, {"logprob", logprob}, {"bytes", bytes}};
  };
  json j = entry(lp.token, lp.logprob);
  json top = json::array();
  for (const auto& [id, l] : lp.top) top.push_back(entry(id, l));
  j["top_logprobs"] = top;
  return j;
}

json usage_json(int64_t prompt, int64_t completion) {
  return json{{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

// The n choices of a request as turns: choice i samples with seed + i and has its own token
// filter (a filter follows one output). The scheduler runs them as one group: the prompt is
// evaluated once and its KV cache forked into each choice's slot.
std::vector<PreparedTurn> choices_of(const GenerationRequest& g, PreparedTurn first) {
  std::vector<PreparedTurn> turns;
  turns.reserve(static_cast<size_t>(g.n));
  for (int i = 1; i < g.n; ++i) {
    PreparedTurn t = first;
    t.job.sampling.seed += static_cast<uint64_t>(i);
    if (g.turn.make_filter) t.job.filter = g.turn.make_filter(t);
    turns.push_back(std::move(t));
  }
  turns.insert(turns.begin(), std::move(first));
  return turns;
}

std::vector<std::shared_ptr<JobHandle>> submit_choices(ServerState& st, const std::vector<PreparedTurn>& turns) {
  std::vector<Job> jobs;
  for (const PreparedTurn& t : turns) jobs.push_back(t.job);
  return submit_or_throw(st, std::move(jobs));
}

// Cancels every choice's job when the request ends early (an exception, a client gone).
struct CancelAll {
  std::vector<std::shared_ptr<JobHandle>> handles;
  ~CancelAll() {
    for (auto& h : handles) h->cancel();
  }
};

// --- whole answers --------------------------------------------------------------------------------

json chat_choice(const ServerState& st, const TurnResult& r, size_t index, bool want_logprobs) {
  json choice = {{"index", index}, {"message", r.assistant_message()}, {"logprobs", nullptr},
                 {"finish_reason", finish_name(r.finish, !r.tool_calls.empty())}};
  if (want_logprobs) {
    json lps = json::array();
    for (const auto& lp : r.logprobs) lps.push_back(logprob_json(st.engine->tokenizer(), lp));
    choice["logprobs"] = {{"content", lps}};
  }
  return choice;
}

json completion_choice(const ServerState& st, const TurnResult& r, size_t index, bool want_logprobs) {
  json choice = {{"index", index}, {"text", r.content}, {"logprobs", nullptr}, {"finish_reason", finish_name(r.finish, false)}};
  if (want_logprobs) {
    json tokens = json::array(), values = json::array();
    for (const auto& lp : r.logprobs) {
      tokens.push_back(token_text(st.engine->tokenizer(), lp.token));
      values.push_back(lp.logprob);
    }
    choice["logprobs"] = {{"tokens", tokens}, {"token_logprobs", values}};
  }
  return choice;
}

void respond_whole(ServerState& st, const GenerationRequest& g, std::vector<PreparedTurn>& turns, httplib::Response& res,
                   double started) {
  Metrics& metrics = st.metrics;
  CancelAll jobs{submit_choices(st, turns)};
  bool first = true;
  TurnCallbacks callbacks;
  callbacks.on_first_token = [&] {
    if (first) metrics.time_to_first_token.observe(now_seconds() - started);
    first = false;
  };
  const bool want_logprobs = g.turn.top_logprobs >= 0;
  json choices = json::array();
  int64_t prompt_tokens = 0, completion_tokens = 0;
  // One after the other: the scheduler runs them together and keeps each one's tokens until read.
  for (size_t i = 0; i < turns.size(); ++i) {
    QueuedJob queued(jobs.handles[i], st.scheduler->context());
    TurnResult r = run_turn(*st.engine, turns[i], queued, callbacks);
    if (r.finish == StopReason::Error) throw BadRequest{"generation failed: " + r.error, "", 500, "server_error"};
    choices.push_back(g.chat ? chat_choice(st, r, i, want_logprobs) : completion_choice(st, r, i, want_logprobs));
    prompt_tokens = r.prompt_tokens;  // evaluated once for all choices
    completion_tokens += r.completion_tokens;
  }
  metrics.add_tokens(prompt_tokens, completion_tokens);
  metrics.request_duration.observe(now_seconds() - started);
  send_json(res, 200, json{{"id", random_id(g.chat ? "chatcmpl-" : "cmpl-")},
                           {"object", g.chat ? "chat.completion" : "text_completion"},
                           {"created", unix_time()}, {"model", st.model_name}, {"choices", choices},
                           {"usage", usage_json(prompt_tokens, completion_tokens)}});
}

// --- streams --------------------------------------------------------------------------------------

// One streamed answer as server-sent events, each chunk tagged with its choice's index: (chat)
// the role, then each piece as it becomes final (reasoning, content with its logprobs, tool
// calls), the finish_reason, then once all choices ended the usage when asked, and [DONE]. A
// failed generation sends an error body instead of its finish. With n > 1 the choices are
// followed on threads of their own (one here), whose writes take turns.
class EventStream {
 public:
  EventStream(ServerState& st, const GenerationRequest& g, std::vector<PreparedTurn> turns,
              std::vector<std::shared_ptr<JobHandle>> handles, double started)
      : st_(st), chat_(g.chat), include_usage_(g.include_usage), want_logprobs_(g.turn.top_logprobs >= 0),
        id_(random_id(g.chat ? "chatcmpl-" : "cmpl-")), created_(unix_time()), turns_(std::move(turns)),
        handles_(std::move(handles)), tool_calls_sent_(turns_.size(), 0), started_(started) {}

  // The whole stream, on the connection's thread; false when the client went away.
  bool run(httplib::DataSink& sink) {
    if (ran_) return false;
    ran_ = true;
    sink_ = &sink;
    if (chat_)
      for (size_t i = 0; i < turns_.size(); ++i)
        if (!send(chunk(i, json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr))) return false;
    std::vector<TurnResult> results(turns_.size());
    std::vector<std::thread> others;
    for (size_t i = 1; i < turns_.size(); ++i) others.emplace_back([this, i, &results] { results[i] = follow(i); });
    results[0] = follow(0);
    for (std::thread& t : others) t.join();
    int64_t completion_tokens = 0;
    for (const TurnResult& r : results) {
      if (r.finish == StopReason::Callback) return false;
      completion_tokens += r.completion_tokens;
    }
    if (include_usage_) {
      send(json{{"id", id_}, {"object", chat_ ? "chat.completion.chunk" : "text_completion"}, {"created", created_},
                {"model", st_.model_name}, {"choices", json::array()},
                {"usage", usage_json(results[0].prompt_tokens, completion_tokens)}});
    }
    const char* done = "data: [DONE]\n\n";
    sink_->write(done, std::strlen(done));
    st_.metrics.add_tokens(results[0].prompt_tokens, completion_tokens);
    st_.metrics.request_duration.observe(now_seconds() - started_);
    sink.done();
    return true;
  }

 private:
  // Runs choice i to its end and sends its finish.
  TurnResult follow(size_t i) {
    TurnResult r;
    try {
      QueuedJob queued(handles_[i], st_.scheduler->context());
      TurnCallbacks callbacks;
      callbacks.on_delta = [this, i](const TurnDelta& d) { return emit(i, d); };
      callbacks.on_wait = [this] {
        std::lock_guard<std::mutex> lk(write_mu_);
        return sink_->is_writable();
      };
      callbacks.on_first_token = [this] {
        if (!first_token_seen_.exchange(true)) st_.metrics.time_to_first_token.observe(now_seconds() - started_);
      };
      r = run_turn(*st_.engine, turns_[i], queued, callbacks);
    } catch (const std::exception& e) {
      r.finish = StopReason::Error;
      r.error = e.what();
    }
    if (r.finish == StopReason::Callback) return r;
    if (r.finish == StopReason::Error) send(error_body("generation failed: " + r.error, "server_error", ""));
    else send(chunk(i, json::object(), finish_name(r.finish, tool_calls_sent_[i] > 0), nullptr));
    return r;
  }

  bool send(const json& body) {
    std::string line = "data: " + body.dump() + "\n\n";
    std::lock_guard<std::mutex> lk(write_mu_);
    return sink_->write(line.data(), line.size());
  }

  json chunk(size_t index, json delta, const json& finish_reason, const json& lps) const {
    json choice = chat_ ? json{{"index", index}, {"delta", std::move(delta)}, {"logprobs", lps}, {"finish_reason", finish_reason}}
                        : json{{"index", index}, {"text", delta.value("content", "")}, {"logprobs", lps},
                               {"finish_reason", finish_reason}};
    return json{{"id", id_}, {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
                {"created", created_}, {"model", st_.model_name}, {"choices", json::array({choice})}};
  }

  bool emit(size_t i, const TurnDelta& d) {
    json lps = nullptr;
    if (want_logprobs_ && !d.logprobs.empty()) {
      json arr = json::array();
      for (const auto& lp : d.logprobs) arr.push_back(logprob_json(st_.engine->tokenizer(), lp));
      lps = json{{"content", arr}};
    }
    if (!d.reasoning.empty() && !send(chunk(i, json{{"reasoning_content", d.reasoning}}, nullptr, nullptr))) return false;
    if ((!d.content.empty() || !lps.is_null()) && !send(chunk(i, json{{"content", d.content}}, nullptr, lps))) return false;
    if (!d.tool_calls.empty()) {
      json calls = tool_calls_json(d.tool_calls, true);
      for (size_t k = 0; k < calls.size(); ++k) calls[k]["index"] = tool_calls_sent_[i] + k;
      tool_calls_sent_[i] += calls.size();
      if (!send(chunk(i, json{{"tool_calls", calls}}, nullptr, nullptr))) return false;
    }
    return true;
  }

  ServerState& st_;
  const bool chat_, include_usage_, want_logprobs_;
  const std::string id_;
  const int64_t created_;
  std::vector<PreparedTurn> turns_;
  std::vector<std::shared_ptr<JobHandle>> handles_;
  std::vector<size_t> tool_calls_sent_;  // per choice; each touched by its own thread only
  const double started_;
  httplib::DataSink* sink_ = nullptr;
  std::mutex write_mu_;  // one chunk at a time on the connection
  std::atomic<bool> first_token_seen_{false};
  bool ran_ = false;
};

void respond_streaming(ServerState& st, const GenerationRequest& g, std::vector<PreparedTurn> turns,
                       httplib::Response& res, double started) {
  std::vector<std::shared_ptr<JobHandle>> handles = submit_choices(st, turns);
  auto stream = std::make_shared<EventStream>(st, g, std::move(turns), handles, started);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [stream](size_t, httplib::DataSink& sink) { return stream->run(sink); },
      [handles](bool) {
        for (const auto& h : handles) h->cancel();
      });
  res.status = 200;
}

void handle_generation(ServerState& st, const httplib::Request& req, httplib::Response& res, bool chat) {
  const double started = now_seconds();
  json body = parse_body(req.body);
  if (chat && expand_server_tools(st, body)) {
    chat_with_server_tools(st, std::move(body), res, started);
    return;
  }
  if (chat) require_chat_template(st, "messages");
  GenerationRequest g = parse_generation(body, chat);
  if (g.n > st.options.parallel) {
    throw BadRequest{concat("'n' is ", g.n, " but this server generates at most ", st.options.parallel,
                            " sequences at once (--parallel)"),
                     "n"};
  }
  std::vector<PreparedTurn> turns = choices_of(g, prepare_generation(st, g));
  if (g.stream) respond_streaming(st, g, std::move(turns), res, started);
  else respond_whole(st, g, turns, res, started);
}

}  // namespace

void require_chat_template(const ServerState& st, const char* param) {
  if (!st.engine->has_chat_template()) {
    throw BadRequest{"this model has no chat template (" + st.engine->chat_template_error() + "); use /v1/completions",
                     param};
  }
}

PreparedTurn prepare_generation(ServerState& st, GenerationRequest& g) {
  const int64_t vocab = st.engine->vocab_size();
  for (const auto& [id, bias] : g.logit_bias) {
    if (id >= vocab) {
      throw BadRequest{concat("logit_bias: token id ", id, " is outside the vocabulary (", vocab, " tokens)"),
                       "logit_bias"};
    }
  }
  g.turn.make_filter = filter_maker(*st.engine, g);
  if (g.turn.images.size() != g.image_parts.size()) g.turn.images = load_images(st.options, g.image_parts);
  PreparedTurn turn;
  try {
    turn = prepare_turn(*st.engine, g.turn, st.options.context);
  } catch (const Error& e) {
    throw BadRequest{e.what(), g.prompt_param};
  }
  turn.job.options.logit_bias = g.logit_bias;
  return turn;
}

TurnResult run_generation(ServerState& st, PreparedTurn& turn, const TurnCallbacks& callbacks) {
  QueuedJob queued(submit_or_throw(st, {turn.job})[0], st.scheduler->context());
  TurnResult r = run_turn(*st.engine, turn, queued, callbacks);
  if (r.finish == StopReason::Error) throw BadRequest{"generation failed: " + r.error, "", 500, "server_error"};
  return r;
}

const char* finish_name(StopReason reason, bool tool_calls) {
  if (reason == StopReason::MaxTokens || reason == StopReason::ContextFull) return "length";
  return tool_calls ? "tool_calls" : "stop";
}

json tool_calls_json(const std::vector<chat::ToolCall>& calls, bool with_index) {
  json arr = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", calls[i].id}, {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) c["index"] = i;
    arr.push_back(c);
  }
  return arr;
}

void install_generation_routes(httplib::Server& svr, ServerState& st) {
  svr.Post("/v1/chat/completions", guarded(st, "/v1/chat/completions", [&st](const auto& req, auto& res) {
             handle_generation(st, req, res, true);
           }));
  svr.Post("/v1/completions", guarded(st, "/v1/completions", [&st](const auto& req, auto& res) {
             handle_generation(st, req, res, false);
           }));
}

}  // namespace kexa::server
