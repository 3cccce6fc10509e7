// What the tokenizer.json components around the model (normalizer, pre-tokenizer, decoder) have
// in common: an ordered list of steps, read from one component or from a "Sequence" of them.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kexa::tok {

// Base of a component class `Derived` whose steps are `Step`s. Step is defined in the
// component's .cpp, which includes tokenizer/steps_impl.h and instantiates this template there
// (`template class Steps<Derived, Step>;`): the members that need a complete Step live there.
template <typename Derived, typename Step>
class Steps {
 public:
  Steps();
  ~Steps();
  Steps(Steps&&) noexcept;
  Steps& operator=(Steps&&) noexcept;

  bool empty() const { return steps_.empty(); }

 protected:
  // The component `j` (null: no steps), Sequences (whose list is under `list_key`) flattened,
  // each component read by Step::read(type, object, where); errors name `what` and `where`.
  static Derived read(const nlohmann::json& j, const char* what, const char* list_key, const std::string& where);
  static Derived of(std::vector<Step> steps);

  std::vector<Step> steps_;
};

}  // namespace kexa::tok
