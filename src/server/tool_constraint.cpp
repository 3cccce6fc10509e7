#include "server/tool_constraint.h"

#include <algorithm>

#include "util/error.h"

namespace kexa::server {

namespace {

constexpr std::string_view kReasoningClose = "</think>";
constexpr std::string_view kOpen = "<tool_call>{\"name\": ";
constexpr std::string_view kClose = "}</tool_call>";
constexpr size_t kMaxLeadBlanks = 4;

bool is_blank(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

ToolCallConstraint::ToolCallConstraint(const std::vector<Function>& functions, bool multiple,
                                       bool reasoning_open)
    : multiple_(multiple), phase_(reasoning_open ? Phase::Reasoning : Phase::Lead) {
  if (functions.empty()) fail("a forced tool call needs at least one function");
  auto alts = std::make_shared<std::vector<Alternative>>();
  for (const Function& f : functions) {
    Alternative a;
    // The template writes the call as Python's json.dumps does: ", " and ": " separators.
    a.literal = nlohmann::json(f.name).dump() + ", \"arguments\": ";
    try {
      if (f.parameters.is_null()) {
        a.arguments = std::make_shared<const JsonConstraint>(nlohmann::json::object(), true);
      } else {
        a.arguments = std::make_shared<const JsonConstraint>(f.parameters, false);
      }
    } catch (const Error& e) {
      fail("function '", f.name, "': parameters schema: ", e.what());
    }
    a.min_arguments = a.arguments->min_completion();
    alts->push_back(std::move(a));
  }
  alternatives_ = std::move(alts);
}

ToolCallConstraint::~ToolCallConstraint() = default;

ToolCallConstraint::ToolCallConstraint(const ToolCallConstraint& other)
    : TextConstraint(other),
      alternatives_(other.alternatives_),
      multiple_(other.multiple_),
      phase_(other.phase_),
      tail_(other.tail_),
      progress_(other.progress_),
      name_(other.name_),
      chosen_(other.chosen_),
      args_(other.args_ ? std::make_unique<JsonConstraint>(*other.args_) : nullptr) {}

bool ToolCallConstraint::feed(char c) {
  switch (phase_) {
    case Phase::Reasoning:
      tail_ += c;
      if (tail_.size() > kReasoningClose.size()) tail_.erase(0, tail_.size() - kReasoningClose.size());
      if (tail_ == kReasoningClose) {
        phase_ = Phase::Lead;
        progress_ = 0;
      }
      return true;
    case Phase::Lead:
      if (is_blank(c)) {
        return ++progress_ <= kMaxLeadBlanks;
      }
      phase_ = Phase::Open;
      progress_ = 0;
      [[fallthrough]];
    case Phase::Open:
      if (c != kOpen[progress_]) return false;
      if (++progress_ == kOpen.size()) {
        phase_ = Phase::Name;
        name_.clear();
      }
      return true;
    case Phase::Name: {
      name_ += c;
      const auto& alts = *alternatives_;
      for (size_t i = 0; i < alts.size(); ++i) {
        if (alts[i].literal.compare(0, name_.size(), name_) != 0) continue;
        if (name_.size() == alts[i].literal.size()) {
          phase_ = Phase::Arguments;
          chosen_ = i;
          args_ = std::make_unique<JsonConstraint>(*alts[i].arguments);
        }
        return true;
      }
      return false;
    }
    case Phase::Arguments:
      if (!args_->complete()) return args_->feed(c);
      phase_ = Phase::Close;
      progress_ = 0;
      args_.reset();
      [[fallthrough]];
    case Phase::Close:
      if (c != kClose[progress_]) return false;
      if (++progress_ == kClose.size()) phase_ = Phase::After;
      return true;
    case Phase::After:
      // Another call may follow on the next line.
      if (!multiple_ || c != '\n') return false;
      phase_ = Phase::Lead;
      progress_ = kMaxLeadBlanks;  // the newline was the separator: no further blanks
      return true;
  }
  return false;
}

bool ToolCallConstraint::accepts(std::string_view text, size_t budget) const {
  if (text.empty()) return false;
  ToolCallConstraint copy(*this);
  for (char c : text) {
    if (!copy.feed(c)) return false;
  }
  return budget == SIZE_MAX || copy.min_completion() <= budget;
}

void ToolCallConstraint::advance(std::string_view text) {
  for (char c : text) {
    if (!feed(c)) fail("constrained tool call rejected a character it had accepted");
  }
}

bool ToolCallConstraint::complete() const { return phase_ == Phase::After; }

bool ToolCallConstraint::in_reasoning() const { return phase_ == Phase::Reasoning; }

size_t ToolCallConstraint::min_completion() const {
  const auto& alts = *alternatives_;
  auto cheapest_name = [&](std::string_view typed) {
    size_t best = SIZE_MAX;
    for (const Alternative& a : alts) {
      if (a.literal.compare(0, typed.size(), typed) != 0) continue;
      best = std::min(best, a.literal.size() - typed.size() + a.min_arguments + kClose.size());
    }
    return best;
  };
  switch (phase_) {
    case Phase::Reasoning:
      return kReasoningClose.size() + kOpen.size() + cheapest_name("");
    case Phase::Lead:
      return kOpen.size() + cheapest_name("");
    case Phase::Open:
      return kOpen.size() - progress_ + cheapest_name("");
    case Phase::Name:
      return cheapest_name(name_);
    case Phase::Arguments:
      return args_->min_completion() + kClose.size();
    case Phase::Close:
      return kClose.size() - progress_;
    case Phase::After:
      return 0;
  }
  return 0;
}

}  // namespace kexa::server
