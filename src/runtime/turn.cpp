#include "runtime/turn.h"

#include <algorithm>

#include "chat/template.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/vision.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kexa {

namespace {

using ojson = nlohmann::ordered_json;

// Holds back text that might be the start of a stop string; reports a match.
class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
    stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
  }
  // Returns the text that is safe to emit now.
  std::string push(const std::string& text) {
    if (stopped_) return {};
    held_ += text;
    size_t cut = std::string::npos;
    for (const std::string& s : stops_) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
      stopped_ = true;
      std::string out = held_.substr(0, cut);
      held_.clear();
      return out;
    }
    size_t keep = 0;  // the longest tail of held_ that begins some stop string
    for (const std::string& s : stops_) {
      for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
      }
    }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string finish() {
    std::string out = stopped_ ? std::string() : held_;
    held_.clear();
    return out;
  }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace

struct TurnOutput::Impl {
  Impl(const Tokenizer& tokenizer, const PreparedTurn& turn, TurnResult& result)
      : decoder_(tokenizer), stop_(turn.stop), parse_(turn.parse_output),
        parser_(chat::OutputParser::for_prompt(turn.parse_output ? turn.prompt_text : std::string())),
        result_(result) {}

  TurnDelta feed(const JobEvent& ev) {
    TurnDelta d;
    std::string text;
    for (int32_t t : ev.tokens) text += decoder_.push(t);
    result_.completion_tokens += static_cast<int64_t>(ev.tokens.size());
    d.logprobs = ev.logprobs;
    absorb(stop_.push(text), d);
    return d;
  }
  TurnDelta finish() {
    TurnDelta d;
    std::string tail = stop_.push(decoder_.finish());
    tail += stop_.finish();
    absorb(tail, d);
    if (parse_) merge(parser_.finish(), d);
    return d;
  }
  bool stopped_by_string() const { return stop_.stopped(); }

 private:
  void absorb(const std::string& text, TurnDelta& d) {
    if (text.empty()) return;
    if (parse_) merge(parser_.push(text), d);
    else d.content += text;
  }
  void merge(const chat::ParseDelta& p, TurnDelta& d) {
    d.content += p.content;
    d.reasoning += p.reasoning;
    d.errors.insert(d.errors.end(), p.errors.begin(), p.errors.end());
    // The parser gives every call an id ("call_..."), as the OpenAI API expects.
    d.tool_calls.insert(d.tool_calls.end(), p.tool_calls.begin(), p.tool_calls.end());
  }

  StreamDecoder decoder_;
  StopStrings stop_;
  bool parse_;
  chat::OutputParser parser_;
  TurnResult& result_;
};

TurnOutput::TurnOutput(const Tokenizer& tokenizer, const PreparedTurn& turn, TurnResult& result)
    : impl_(std::make_unique<Impl>(tokenizer, turn, result)) {}
TurnOutput::~TurnOutput() = default;
TurnDelta TurnOutput::feed(const JobEvent& ev) { return impl_->feed(ev); }
TurnDelta TurnOutput::finish() { return impl_->finish(); }
bool TurnOutput::stopped_by_string() const { return impl_->stopped_by_string(); }

namespace {

void append(TurnResult& r, const TurnDelta& d) {
  r.content += d.content;
  r.reasoning += d.reasoning;
  r.tool_calls.insert(r.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  r.errors.insert(r.errors.end(), d.errors.begin(), d.errors.end());
  r.logprobs.insert(r.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
}

std::vector<int32_t> prompt_ids(const Engine& engine, const TurnRequest& request, PreparedTurn& turn) {
  if (turn.chat) {
    turn.prompt_text = engine.chat_template().render(request.messages, request.tools, request.add_generation_prompt,
                                                     request.kwargs);
    // As apply_chat_template(tokenize=True): the template writes BOS itself when it wants one.
    return engine.tokenizer().encode(turn.prompt_text, /*add_special_tokens=*/false, /*parse_special=*/true);
  }
  if (request.prompt_text) {
    turn.prompt_text = *request.prompt_text;
    return engine.tokenizer().encode(turn.prompt_text, /*add_special_tokens=*/true, /*parse_special=*/true);
  }
  return request.prompt_ids;
}

// The template writes one image token per picture; each becomes as many positions as the vision
// tower gives rows, and those rows are the positions' inputs (job.embeddings).
void expand_images(const Engine& engine, const std::vector<RgbImage>& images, int64_t context, Job& job) {
  const int32_t pad = engine.image_token_id();
  if (pad < 0) fail("this model's image token is unknown (no image_token_id and no <|image_pad|> token)");
  const size_t placeholders = static_cast<size_t>(std::count(job.prompt.begin(), job.prompt.end(), pad));
  if (placeholders != images.size()) {
    fail("the prompt has ", placeholders, " image placeholder", placeholders == 1 ? "" : "s", " but ", images.size(),
         " image", images.size() == 1 ? " was" : "s were", " given");
  }
  // Sizes first: a prompt that cannot fit is refused before any image is encoded.
  std::vector<int64_t> counts;
  int64_t total = static_cast<int64_t>(job.prompt.size()) - static_cast<int64_t>(images.size());
  for (const RgbImage& im : images) {
    counts.push_back(engine.vision().token_count(im));
    total += counts.back();
  }
  if (total >= context) {
    fail("the prompt with its ", images.size(), " image", images.size() == 1 ? "" : "s", " is ", total,
         " tokens; the context is ", context, " tokens");
  }
  auto e = std::make_shared<InputEmbeddings>();
  e->width = engine.config().hidden_size;
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(total));
  size_t next = 0;
  for (int32_t id : job.prompt) {
    if (id != pad) {
      ids.push_back(id);
      continue;
    }
    std::vector<float> rows = engine.encode_image(images[next]);
    const int64_t n = counts[next++];
    if (static_cast<int64_t>(rows.size()) != n * e->width) fail("the vision tower gave ", rows.size(), " values for ", n, " tokens");
    e->spans.push_back({static_cast<int64_t>(ids.size()), n, e->rows.size()});
    e->rows.insert(e->rows.end(), rows.begin(), rows.end());
    ids.insert(ids.end(), static_cast<size_t>(n), pad);
  }
  job.prompt = std::move(ids);
  job.embeddings = std::move(e);
}

}  // namespace

ojson TurnResult::assistant_message() const {
  ojson m = {{"role", "assistant"}, {"content", content}};
  if (!reasoning.empty()) m["reasoning_content"] = reasoning;
  if (!tool_calls.empty()) {
    ojson calls = ojson::array();
    for (const chat::ToolCall& c : tool_calls)
      calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    m["tool_calls"] = calls;
    if (content.empty()) m["content"] = nullptr;
  }
  return m;
}

PreparedTurn prepare_turn(const Engine& engine, const TurnRequest& request, int64_t context) {
  PreparedTurn turn;
  turn.chat = request.messages.is_array();
  turn.parse_output = request.parse_output.value_or(turn.chat);
  turn.stop = request.stop;
  Job& job = turn.job;
  if (!request.images.empty() && !engine.has_vision())
    fail("this model does not read images (", request.images.size(), " given): it has no vision tower");
  job.prompt = prompt_ids(engine, request, turn);
  if (!request.images.empty()) expand_images(engine, request.images, context, job);
  const int64_t n = static_cast<int64_t>(job.prompt.size());
  if (n == 0) fail("the prompt is empty");
  if (n >= context) fail("the prompt is ", n, " tokens; the context is ", context, " tokens");
  if (turn.parse_output) turn.reasoning_open = chat::OutputParser::for_prompt(turn.prompt_text).in_reasoning();
  const int64_t room = context - n;
  job.sampling = request.sampling;
  job.options.max_tokens = std::min<int64_t>(request.max_tokens.value_or(room), room);
  job.options.stop_ids = engine.stop_ids();
  job.options.use_model_eos = false;  // engine.stop_ids() holds them
  job.options.top_logprobs = std::min(request.top_logprobs, 20);
  if (request.make_filter) job.filter = request.make_filter(turn);
  return turn;
}

TurnResult run_turn(const Engine& engine, PreparedTurn& turn, GenerationBackend& backend,
                    const TurnCallbacks& callbacks) {
  TurnResult result;
  result.prompt_text = turn.prompt_text;
  result.prompt_tokens = static_cast<int64_t>(turn.job.prompt.size());
  TurnOutput output(engine.tokenizer(), turn, result);
  bool first = true, cancelled = false;
  auto deliver = [&](const TurnDelta& d) {
    append(result, d);
    if (!d.empty() && callbacks.on_delta && !callbacks.on_delta(d)) cancelled = true;
  };
  JobEnd end = backend.run(std::move(turn.job), [&](const JobEvent& ev) {
    if (ev.tokens.empty()) return !(callbacks.on_wait && !callbacks.on_wait());
    if (first && callbacks.on_first_token) callbacks.on_first_token();
    first = false;
    deliver(output.feed(ev));
    return !cancelled && !output.stopped_by_string();
  });
  result.finish = output.stopped_by_string() ? StopReason::StopString : end.reason;
  result.error = end.error;
  if (!cancelled) deliver(output.finish());
  return result;
}

TurnResult run_chat_turn(const Engine& engine, GenerationBackend& backend, const TurnRequest& request,
                         const TurnCallbacks& callbacks) {
  PreparedTurn turn = prepare_turn(engine, request, backend.context());
  return run_turn(engine, turn, backend, callbacks);
}

ChatFunction chat_function(const Engine& engine, GenerationBackend& backend) {
  ChatFunction f;
  f.turn = [&engine, &backend](const TurnRequest& request, const TurnCallbacks& callbacks) {
    return run_chat_turn(engine, backend, request, callbacks);
  };
  f.tokenizer = &engine.tokenizer();
  f.stop_ids = engine.stop_ids();
  f.token_texts = [&engine]() -> const TokenTexts& { return engine.token_texts(); };
  return f;
}

}  // namespace kexa
