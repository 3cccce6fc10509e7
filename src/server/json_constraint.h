// Constrained decoding for response_format: an incremental JSON recognizer that knows a JSON
// Schema subset (object properties/required/additionalProperties, array items/minItems/maxItems,
// string/number/integer/boolean/null types, type lists, enum, const). A token may be sampled only
// if its text keeps the output a prefix of a valid document; once the value is complete only the
// end of the reply may follow.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/text_constraint.h"

namespace kexa::server {

class JsonConstraint : public TextConstraint {
 public:
  // any_object: response_format json_object (any JSON object). Otherwise `schema` is a JSON
  // Schema; unsupported keywords ($ref, anyOf, oneOf, allOf, not, pattern) throw kexa::Error.
  JsonConstraint(const nlohmann::json& schema, bool any_object);
  ~JsonConstraint() override;
  // Copies share the (immutable) schema and continue independently: a grammar that embeds a
  // JSON value (a tool call's arguments) tries characters on a copy.
  JsonConstraint(const JsonConstraint& other);
  JsonConstraint& operator=(const JsonConstraint&) = delete;

  // True when `text` appended to the output so far keeps it a valid prefix and the shortest
  // text that then completes the document is at most `budget` characters (one per remaining
  // token at worst), so a reply cut by max_tokens still ends as a valid document.
  bool accepts(std::string_view text, size_t budget = SIZE_MAX) const override;
  // Characters the shortest completion of the current output needs.
  size_t min_completion() const;
  // Appends `text` (which accepts() allowed).
  void advance(std::string_view text) override;
  // True when the output is one complete value.
  bool complete() const override;
  // Appends one character if it keeps the output a valid prefix; false (and the state is then
  // unspecified, so feed a copy) when it does not.
  bool feed(char c);

  struct State;

 private:
  std::shared_ptr<const nlohmann::json> schema_;  // frames point into it
  std::unique_ptr<State> state_;
};

}  // namespace kexa::server
