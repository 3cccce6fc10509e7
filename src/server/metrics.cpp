#include "server/metrics.h"

#include <cstdio>

namespace kexa::server {

namespace {
std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> lk(mu_);
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lk(mu_);
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::add_tokens(int64_t prompt, int64_t generated) {
  std::lock_guard<std::mutex> lk(mu_);
  prompt_tokens_ += prompt;
  generated_tokens_ += generated;
}

std::string Metrics::render(const std::vector<std::pair<std::string, double>>& gauges) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lk(mu_);
    out += "# HELP kexa_requests_total HTTP requests by endpoint and status.\n";
    out += "# TYPE kexa_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      out += "kexa_requests_total{endpoint=\"" + key.first + "\",status=\"" +
             std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
    }
    out += "# HELP kexa_prompt_tokens_total Prompt tokens received.\n# TYPE kexa_prompt_tokens_total counter\n";
    out += "kexa_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
    out += "# HELP kexa_generated_tokens_total Tokens generated.\n# TYPE kexa_generated_tokens_total counter\n";
    out += "kexa_generated_tokens_total " + std::to_string(generated_tokens_) + "\n";
  }
  time_to_first_token.render(out, "kexa_time_to_first_token_seconds", "Time from request to first generated token.");
  token_latency.render(out, "kexa_token_latency_seconds", "Time between consecutive tokens of a sequence (one batched step).");
  request_duration.render(out, "kexa_request_duration_seconds", "Time to answer a generation request.");
  for (const auto& [name, value] : gauges) {
    out += "# TYPE " + name + " gauge\n" + name + " " + number(value) + "\n";
  }
  return out;
}

}  // namespace kexa::server
