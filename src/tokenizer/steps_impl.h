// The members of tok::Steps that need a complete Step: included only by the .cpp that defines
// a component's Step (see tokenizer/steps.h).
#pragma once

#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"
#include "tokenizer/steps.h"

namespace kexa::tok {

template <typename Derived, typename Step>
Steps<Derived, Step>::Steps() = default;
template <typename Derived, typename Step>
Steps<Derived, Step>::~Steps() = default;
template <typename Derived, typename Step>
Steps<Derived, Step>::Steps(Steps&&) noexcept = default;
template <typename Derived, typename Step>
Steps<Derived, Step>& Steps<Derived, Step>::operator=(Steps&&) noexcept = default;

template <typename Derived, typename Step>
Derived Steps<Derived, Step>::read(const nlohmann::json& j, const char* what, const char* list_key,
                                   const std::string& where) {
  Derived d;
  if (!j.is_null()) {
    for_each_component(j, what, list_key, where, [&](const std::string& type, const nlohmann::json& c) {
      d.steps_.push_back(Step::read(type, c, where));
    });
  }
  return d;
}

template <typename Derived, typename Step>
Derived Steps<Derived, Step>::of(std::vector<Step> steps) {
  Derived d;
  d.steps_ = std::move(steps);
  return d;
}

}  // namespace kexa::tok
