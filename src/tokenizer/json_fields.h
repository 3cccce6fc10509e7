// Reading tokenizer.json components (normalizer, pre_tokenizer, decoder): optional fields with
// defaults, and the {"type": "Sequence", ...} nesting all three share. Internal to src/tokenizer.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace kexa::tok {

// j[key] when present with the right type, else def.
inline std::string str_or(const nlohmann::json& j, const char* key, std::string def) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}
inline bool bool_or(const nlohmann::json& j, const char* key, bool def) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : def;
}
inline int64_t int_or(const nlohmann::json& j, const char* key, int64_t def) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : def;
}

// Calls add(type, object) for every component of `j` in order, flattening Sequences (whose list
// is under list_key). `what` names the component kind in errors, which also name `where`.
template <typename Add>
void for_each_component(const nlohmann::json& j, const char* what, const char* list_key,
                        const std::string& where, Add&& add) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(where, ": ", what, " must be an object with a \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type != "Sequence") {
    add(type, j);
    return;
  }
  auto it = j.find(list_key);
  if (it == j.end() || !it->is_array()) fail(where, ": Sequence ", what, " without \"", list_key, "\"");
  for (const auto& sub : *it) for_each_component(sub, what, list_key, where, add);
}

}  // namespace kexa::tok
