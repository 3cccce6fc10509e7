#include "runtime/text_constraint.h"

#include <algorithm>
#include <limits>

#include "runtime/engine.h"

namespace kexa {

namespace {

class TextConstraintFilter : public TokenFilter {
 public:
  TextConstraintFilter(std::shared_ptr<TextConstraint> constraint, const TokenTexts& texts,
                       std::vector<int32_t> stop_ids)
      : constraint_(std::move(constraint)), texts_(texts), stop_ids_(std::move(stop_ids)) {}

  void set_remaining(int64_t tokens_after) override { budget_ = static_cast<size_t>(std::max<int64_t>(tokens_after, 0)); }

  bool allows(int32_t token) override {
    if (is_stop(token)) return constraint_->complete();
    const std::string& text = texts_.text(token);
    if (texts_.is_special(token) && !constraint_->accepts_special(text)) return false;
    return constraint_->accepts(text, budget_);
  }

  // mask() asks the constraint about every vocabulary entry; a few redraws are cheaper when the
  // model's favourites are refused.
  int redraws() const override { return 63; }

  void mask(std::span<float> logits) override {
    constexpr float kRemoved = -std::numeric_limits<float>::infinity();
    for (size_t t = 0; t < logits.size(); ++t)
      if (logits[t] != kRemoved && !allows(static_cast<int32_t>(t))) logits[t] = kRemoved;
  }

  void accept(int32_t token) override {
    if (!is_stop(token)) constraint_->advance(texts_.text(token));
  }

 private:
  bool is_stop(int32_t token) const { return std::find(stop_ids_.begin(), stop_ids_.end(), token) != stop_ids_.end(); }

  std::shared_ptr<TextConstraint> constraint_;
  const TokenTexts& texts_;
  std::vector<int32_t> stop_ids_;
  size_t budget_ = 0;
};

}  // namespace

std::shared_ptr<TokenFilter> constrain_text(std::shared_ptr<TextConstraint> constraint, const TokenTexts& texts,
                                            std::vector<int32_t> stop_ids) {
  return std::make_shared<TextConstraintFilter>(std::move(constraint), texts, std::move(stop_ids));
}

}  // namespace kexa
