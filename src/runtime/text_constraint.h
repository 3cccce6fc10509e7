// Constraints written over text (a JSON schema, a forced tool call, a required citation) applied
// to generation token by token: the TokenFilter below asks the constraint about each candidate
// token's text, using the engine's decoded vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "runtime/generator.h"

namespace kexa {

class TokenTexts;

class TextConstraint {
 public:
  virtual ~TextConstraint() = default;
  // True when the output so far followed by `text` can still be completed within `budget` more
  // tokens (the filter passes the tokens that may follow this one).
  virtual bool accepts(std::string_view text, size_t budget) const = 0;
  virtual void advance(std::string_view text) = 0;
  // The output is a whole value: a stop id may come now.
  virtual bool complete() const = 0;
  // Special tokens are markup and refused, except those a constraint names here (a forced tool
  // call lets the reasoning block close).
  virtual bool accepts_special(std::string_view text) const {
    (void)text;
    return false;
  }
};

// The token filter of a text constraint over `texts` (which must outlive it): a stop id is
// allowed only when the constraint is complete; other tokens when the constraint accepts their
// text within the tokens that may still follow.
std::shared_ptr<TokenFilter> constrain_text(std::shared_ptr<TextConstraint> constraint, const TokenTexts& texts,
                                            std::vector<int32_t> stop_ids);

}  // namespace kexa
