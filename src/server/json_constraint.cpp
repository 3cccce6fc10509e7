#include "server/json_constraint.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <set>

#include "util/error.h"

namespace kexa::server {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxWhitespace = 8;    // a run of blanks between tokens
constexpr size_t kMaxNumberChars = 24;
constexpr size_t kMaxStringBytes = 4096;
constexpr size_t kMaxDepth = 32;

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Which JSON types a schema node admits.
struct Types {
  bool object = false, array = false, string = false, number = false, integer = false,
       boolean = false, null = false;
};

void check_supported(const json& schema) {
  if (!schema.is_object()) {
    if (schema.is_boolean()) return;
    fail("a schema must be an object");
  }
  for (const char* k : {"$ref", "anyOf", "oneOf", "allOf", "not", "pattern", "patternProperties"}) {
    if (schema.contains(k)) fail("keyword '", k, "' is not supported");
  }
  if (schema.contains("properties")) {
    if (!schema["properties"].is_object()) fail("'properties' must be an object");
    for (const auto& [k, v] : schema["properties"].items()) check_supported(v);
  }
  if (schema.contains("items")) check_supported(schema["items"]);
  if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
    check_supported(schema["additionalProperties"]);
  }
}

Types types_of(const json* schema) {
  Types t;
  if (schema == nullptr || !schema->is_object() || (!schema->contains("type") && !schema->contains("enum") &&
                                                     !schema->contains("const"))) {
    t = {true, true, true, true, true, true, true};
    if (schema != nullptr && schema->is_object()) {
      if (schema->contains("properties")) t = Types{.object = true};
      else if (schema->contains("items")) t = Types{.array = true};
    }
    return t;
  }
  auto add = [&](const std::string& name) {
    if (name == "object") t.object = true;
    else if (name == "array") t.array = true;
    else if (name == "string") t.string = true;
    else if (name == "number") t.number = t.integer = true;
    else if (name == "integer") t.integer = true;
    else if (name == "boolean") t.boolean = true;
    else if (name == "null") t.null = true;
  };
  if (schema->contains("type")) {
    const json& ty = (*schema)["type"];
    if (ty.is_string()) add(ty.get<std::string>());
    else if (ty.is_array()) for (const auto& x : ty) if (x.is_string()) add(x.get<std::string>());
  } else {
    t = {true, true, true, true, true, true, true};  // enum/const restrict below
  }
  return t;
}

// Literal texts the schema allows (enum / const), serialized as JSON.
std::vector<std::string> literals_of(const json* schema) {
  std::vector<std::string> out;
  if (schema == nullptr || !schema->is_object()) return out;
  if (schema->contains("const")) out.push_back((*schema)["const"].dump());
  if (schema->contains("enum") && (*schema)["enum"].is_array()) {
    for (const auto& v : (*schema)["enum"]) out.push_back(v.dump());
  }
  return out;
}

enum class Kind { Value, Object, Array, String, Number, Literal, Choice };

struct Frame {
  Kind kind = Kind::Value;
  const json* schema = nullptr;
  int state = 0;
  std::string buf;                   // string bytes, number chars, key text, literal progress
  std::vector<std::string> choices;  // Literal/Choice: allowed whole texts
  std::set<std::string> seen_keys;   // Object
  std::string key;                   // Object: key being read / last key
  size_t count = 0;                  // Array items, whitespace run
  bool is_key = false;               // String used as an object key
  bool integer_only = false;         // Number
  size_t chars = 0;                  // String: code points so far
  size_t min_chars = 0, max_chars = SIZE_MAX;
};

// Object states
enum { kObjStart, kObjKey, kObjColon, kObjValue, kObjCommaOrEnd, kObjKeyAfterComma };
// Array states
enum { kArrStart, kArrValue, kArrCommaOrEnd, kArrValueAfterComma };
// String states
enum { kStrNormal, kStrEscape, kStrUnicode };

}  // namespace

struct JsonConstraint::State {
  std::vector<Frame> stack;
  bool done = false;
  size_t ws_run = 0;

  const json* property_schema(const Frame& obj, const std::string& key) const {
    if (obj.schema && obj.schema->is_object() && obj.schema->contains("properties") &&
        (*obj.schema)["properties"].contains(key)) {
      return &(*obj.schema)["properties"][key];
    }
    if (obj.schema && obj.schema->is_object() && obj.schema->contains("additionalProperties") &&
        (*obj.schema)["additionalProperties"].is_object()) {
      return &(*obj.schema)["additionalProperties"];
    }
    return nullptr;
  }
  bool closed_object(const Frame& obj) const {
    if (!obj.schema || !obj.schema->is_object()) return false;
    if (obj.schema->contains("additionalProperties")) {
      const json& ap = (*obj.schema)["additionalProperties"];
      return ap.is_boolean() && !ap.get<bool>();
    }
    // A schema that lists properties means those keys (structured outputs are strict).
    return obj.schema->contains("properties");
  }
  std::vector<std::string> allowed_keys(const Frame& obj) const {
    std::vector<std::string> keys;
    if (obj.schema && obj.schema->contains("properties")) {
      for (const auto& [k, v] : (*obj.schema)["properties"].items()) {
        if (obj.seen_keys.count(k) == 0) keys.push_back(k);
      }
    }
    return keys;
  }
  bool required_met(const Frame& obj) const {
    if (!obj.schema || !obj.schema->is_object() || !obj.schema->contains("required")) return true;
    for (const auto& r : (*obj.schema)["required"]) {
      if (r.is_string() && obj.seen_keys.count(r.get<std::string>()) == 0) return false;
    }
    return true;
  }

  // Called when the top frame finished a value: pops it and tells the parent.
  void value_done() {
    stack.pop_back();
    if (stack.empty()) {
      done = true;
      return;
    }
    Frame& parent = stack.back();
    if (parent.kind == Kind::Object) {
      if (parent.state == kObjKey || parent.state == kObjKeyAfterComma) {
        parent.state = kObjColon;  // the key string finished
      } else {
        parent.state = kObjCommaOrEnd;
      }
    } else if (parent.kind == Kind::Array) {
      ++parent.count;
      parent.state = kArrCommaOrEnd;
    }
  }

  bool push_value(const json* schema) {
    if (stack.size() >= kMaxDepth) return false;
    Frame f;
    f.kind = Kind::Value;
    f.schema = schema;
    stack.push_back(std::move(f));
    return true;
  }

  bool start_value(Frame& f, char c) {
    std::vector<std::string> lits = literals_of(f.schema);
    if (!lits.empty()) {
      f.kind = Kind::Choice;
      f.choices = lits;
      f.buf.clear();
      return feed_choice(c);
    }
    Types t = types_of(f.schema);
    if (c == '{' && t.object) {
      f.kind = Kind::Object;
      f.state = kObjStart;
      return true;
    }
    if (c == '[' && t.array) {
      f.kind = Kind::Array;
      f.state = kArrStart;
      return true;
    }
    if (c == '"' && t.string) {
      f.kind = Kind::String;
      f.state = kStrNormal;
      if (f.schema && f.schema->is_object()) {
        f.min_chars = f.schema->value("minLength", size_t{0});
        f.max_chars = f.schema->value("maxLength", SIZE_MAX);
      }
      return true;
    }
    if ((c == '-' || (c >= '0' && c <= '9')) && (t.number || t.integer)) {
      f.kind = Kind::Number;
      f.integer_only = !t.number;
      f.buf.assign(1, c);
      return true;
    }
    std::vector<std::string> words;
    if (t.boolean) words = {"true", "false"};
    if (t.null) words.push_back("null");
    for (const std::string& w : words) {
      if (w[0] == c) {
        f.kind = Kind::Choice;
        f.choices = words;
        f.buf.assign(1, c);
        return true;
      }
    }
    return false;
  }

  bool feed_choice(char c) {
    Frame& f = stack.back();
    std::string next = f.buf + c;
    bool prefix = false;
    for (const std::string& w : f.choices) {
      if (w.compare(0, next.size(), next) == 0) prefix = true;
    }
    if (!prefix) {
      // A complete choice followed by a delimiter ends the value.
      if (std::find(f.choices.begin(), f.choices.end(), f.buf) != f.choices.end()) {
        value_done();
        return feed(c);
      }
      return false;
    }
    f.buf = next;
    // Finish eagerly when no longer choice extends this one (strings end with a quote).
    bool exact = std::find(f.choices.begin(), f.choices.end(), f.buf) != f.choices.end();
    bool extendable = std::any_of(f.choices.begin(), f.choices.end(), [&](const std::string& w) {
      return w.size() > f.buf.size() && w.compare(0, f.buf.size(), f.buf) == 0;
    });
    if (exact && !extendable) value_done();
    return true;
  }

  bool number_complete(const Frame& f) const {
    const std::string& s = f.buf;
    if (s.empty() || s == "-") return false;
    char last = s.back();
    return last >= '0' && last <= '9';
  }

  bool feed_number(char c) {
    Frame& f = stack.back();
    const std::string& s = f.buf;
    bool digit = c >= '0' && c <= '9';
    bool has_dot = s.find('.') != std::string::npos;
    bool has_exp = s.find_first_of("eE") != std::string::npos;
    char last = s.back();
    bool ok = false;
    if (digit) {
      // No leading zeros: "0" may only be followed by . or e.
      std::string intpart = s.substr(s[0] == '-' ? 1 : 0);
      ok = !(intpart == "0" && !has_dot && !has_exp);
    } else if (c == '.') {
      ok = !f.integer_only && !has_dot && !has_exp && last >= '0' && last <= '9';
    } else if (c == 'e' || c == 'E') {
      ok = !f.integer_only && !has_exp && last >= '0' && last <= '9';
    } else if (c == '+' || c == '-') {
      ok = last == 'e' || last == 'E';
    }
    if (ok) {
      if (s.size() >= kMaxNumberChars) return false;
      // Integers stay within int64 so every consumer reads them as integers.
      if (f.integer_only && digit && s.size() - (s[0] == '-' ? 1 : 0) >= 18) return false;
      f.buf += c;
      return true;
    }
    if (!number_complete(f)) return false;
    value_done();
    return feed(c);
  }

  bool feed_string(char c) {
    Frame& f = stack.back();
    unsigned char u = static_cast<unsigned char>(c);
    if (f.state == kStrEscape) {
      if (c == 'u') {
        f.state = kStrUnicode;
        f.count = 0;
      } else if (std::strchr("\"\\/bfnrt", c) != nullptr && c != 0) {
        f.state = kStrNormal;
      } else {
        return false;
      }
      f.buf += '\\';
      f.buf += c;
      return true;
    }
    if (f.state == kStrUnicode) {
      if (!std::isxdigit(u)) return false;
      f.buf += c;
      if (++f.count == 4) f.state = kStrNormal;
      return true;
    }
    if (c == '"') {
      if (f.chars < f.min_chars) return false;
      if (f.is_key) {
        Frame& obj = stack[stack.size() - 2];
        std::vector<std::string> keys = allowed_keys(obj);
        bool known = std::find(keys.begin(), keys.end(), f.buf) != keys.end();
        if (closed_object(obj) && !known) return false;
        if (obj.seen_keys.count(f.buf) != 0) return false;
        obj.key = f.buf;
        obj.seen_keys.insert(f.buf);
      }
      value_done();
      return true;
    }
    if (u < 0x20) return false;
    if (f.buf.size() >= kMaxStringBytes) return false;
    bool starts_char = (u & 0xC0) != 0x80;
    if (starts_char && f.chars >= f.max_chars) return false;
    if (f.is_key) {
      // Keys of a closed object must stay a prefix of an allowed name.
      Frame& obj = stack[stack.size() - 2];
      if (closed_object(obj)) {
        std::string next = f.buf + c;
        std::vector<std::string> keys = allowed_keys(obj);
        bool prefix = std::any_of(keys.begin(), keys.end(),
                                  [&](const std::string& k) { return k.compare(0, next.size(), next) == 0; });
        if (!prefix) return false;
      }
    }
    if (starts_char) ++f.chars;
    if (c == '\\') {
      if (f.is_key) return false;  // keep keys plain
      f.state = kStrEscape;
      return true;
    }
    f.buf += c;
    return true;
  }

  bool start_key(Frame& obj) {
    (void)obj;
    Frame k;
    k.kind = Kind::String;
    k.is_key = true;
    k.state = kStrNormal;
    stack.push_back(std::move(k));
    return true;
  }

  bool feed_object(char c) {
    Frame& f = stack.back();
    if (is_ws(c)) return true;
    switch (f.state) {
      case kObjStart:
        if (c == '}') {
          if (!required_met(f)) return false;
          value_done();
          return true;
        }
        if (c != '"') return false;
        f.state = kObjKey;
        return start_key(f);
      case kObjKeyAfterComma:
        if (c != '"') return false;
        f.state = kObjKey;
        return start_key(f);
      case kObjColon:
        if (c != ':') return false;
        f.state = kObjValue;
        return push_value(property_schema(f, f.key));
      case kObjCommaOrEnd:
        if (c == ',') {
          if (closed_object(f) && allowed_keys(f).empty()) return false;
          f.state = kObjKeyAfterComma;
          return true;
        }
        if (c == '}') {
          if (!required_met(f)) return false;
          value_done();
          return true;
        }
        return false;
      default:
        return false;
    }
  }

  bool feed_array(char c) {
    Frame& f = stack.back();
    if (is_ws(c)) return true;
    const json* items = (f.schema && f.schema->is_object() && f.schema->contains("items")) ? &(*f.schema)["items"] : nullptr;
    size_t min_items = f.schema && f.schema->is_object() ? f.schema->value("minItems", size_t{0}) : 0;
    size_t max_items = f.schema && f.schema->is_object() ? f.schema->value("maxItems", size_t{1} << 20) : size_t{1} << 20;
    switch (f.state) {
      case kArrStart:
        if (c == ']') {
          if (min_items > 0) return false;
          value_done();
          return true;
        }
        if (max_items == 0) return false;
        f.state = kArrValue;
        if (!push_value(items)) return false;
        return feed(c);
      case kArrValueAfterComma:
        f.state = kArrValue;
        if (!push_value(items)) return false;
        return feed(c);
      case kArrCommaOrEnd:
        if (c == ',') {
          if (f.count >= max_items) return false;
          f.state = kArrValueAfterComma;
          return true;
        }
        if (c == ']') {
          if (f.count < min_items) return false;
          value_done();
          return true;
        }
        return false;
      default:
        return false;
    }
  }

  bool feed(char c) {
    if (done) return false;  // nothing may follow the value
    Frame& f = stack.back();
    switch (f.kind) {
      case Kind::Value:
        if (is_ws(c)) return ++ws_run <= kMaxWhitespace;
        ws_run = 0;
        return start_value(f, c);
      case Kind::Object:
        if (is_ws(c)) return ++ws_run <= kMaxWhitespace;
        ws_run = 0;
        return feed_object(c);
      case Kind::Array:
        if (is_ws(c)) return ++ws_run <= kMaxWhitespace;
        ws_run = 0;
        return feed_array(c);
      case Kind::String:
        return feed_string(c);
      case Kind::Number:
        return feed_number(c);
      case Kind::Choice:
      case Kind::Literal:
        return feed_choice(c);
    }
    return false;
  }

  // Shortest text that is a whole value of `schema`.
  size_t min_value(const json* schema) const {
    std::vector<std::string> lits = literals_of(schema);
    if (!lits.empty()) {
      size_t best = SIZE_MAX;
      for (const std::string& l : lits) best = std::min(best, l.size());
      return best;
    }
    Types t = types_of(schema);
    if (t.number || t.integer) return 1;
    if (t.null || t.boolean) return 4;
    if (t.string) return 2 + ((schema && schema->is_object()) ? schema->value("minLength", size_t{0}) : 0);
    if (t.array) {
      size_t m = (schema && schema->is_object()) ? schema->value("minItems", size_t{0}) : 0;
      return 1 + items_cost(item_schema(schema), m) + 1;
    }
    if (t.object) {
      std::vector<std::string> missing = missing_required(schema, {});
      return 1 + members_cost(schema, missing) + (missing.empty() ? 0 : missing.size() - 1) + 1;
    }
    return 1;
  }
  const json* item_schema(const json* schema) const {
    return (schema && schema->is_object() && schema->contains("items")) ? &(*schema)["items"] : nullptr;
  }
  const json* prop_of(const json* schema, const std::string& key) const {
    if (schema && schema->is_object() && schema->contains("properties") && (*schema)["properties"].contains(key)) {
      return &(*schema)["properties"][key];
    }
    if (schema && schema->is_object() && schema->contains("additionalProperties") &&
        (*schema)["additionalProperties"].is_object()) {
      return &(*schema)["additionalProperties"];
    }
    return nullptr;
  }
  // n items separated by commas (no brackets).
  size_t items_cost(const json* items, size_t n) const {
    return n == 0 ? 0 : n * min_value(items) + (n - 1);
  }
  std::vector<std::string> missing_required(const json* schema, const std::set<std::string>& seen) const {
    std::vector<std::string> out;
    if (!schema || !schema->is_object() || !schema->contains("required")) return out;
    for (const auto& r : (*schema)["required"]) {
      if (r.is_string() && seen.count(r.get<std::string>()) == 0) out.push_back(r.get<std::string>());
    }
    return out;
  }
  size_t member_cost(const json* schema, const std::string& key) const {
    return key.size() + 3 + min_value(prop_of(schema, key));  // "key":value
  }
  size_t members_cost(const json* schema, const std::vector<std::string>& keys) const {
    size_t total = 0;
    for (const std::string& k : keys) total += member_cost(schema, k);
    return total;
  }
  // After a complete member: the missing required members, each after a comma, then '}'.
  size_t object_tail(const Frame& obj) const {
    std::vector<std::string> missing = missing_required(obj.schema, obj.seen_keys);
    return members_cost(obj.schema, missing) + missing.size() + 1;
  }

  // Length of the shortest text that completes the output: exact, so that whenever it fits the
  // budget some next character also fits (no dead ends).
  size_t min_completion() const {
    if (done) return 0;
    size_t total = 0;
    for (size_t i = stack.size(); i-- > 0;) {
      const Frame& f = stack[i];
      switch (f.kind) {
        case Kind::Value:
          total += min_value(f.schema);
          break;
        case Kind::String:
          if (f.is_key) {
            // The key being typed and its object are finished together: pick the cheapest key
            // this prefix can become.
            const Frame& obj = stack[i - 1];
            std::vector<std::string> candidates;
            std::vector<std::string> missing = missing_required(obj.schema, obj.seen_keys);
            for (const std::string& k : closed_object(obj) ? allowed_keys(obj) : missing) {
              if (k.compare(0, f.buf.size(), f.buf) == 0) candidates.push_back(k);
            }
            if (!closed_object(obj)) candidates.push_back(f.buf);
            size_t best = SIZE_MAX;
            for (const std::string& k : candidates) {
              std::vector<std::string> rest;
              for (const std::string& m : missing) {
                if (m != k) rest.push_back(m);
              }
              size_t cost = (k.size() - f.buf.size()) + 2 + min_value(prop_of(obj.schema, k)) +
                            members_cost(obj.schema, rest) + rest.size() + 1;
              best = std::min(best, cost);
            }
            total += best == SIZE_MAX ? 0 : best;
            --i;  // the object frame is accounted for
            break;
          }
          total += 1 + (f.chars < f.min_chars ? f.min_chars - f.chars : 0);
          if (f.state == kStrEscape) total += 1;
          if (f.state == kStrUnicode) total += 4 - f.count;
          break;
        case Kind::Number:
          total += number_complete(f) ? 0 : 1;
          break;
        case Kind::Choice:
        case Kind::Literal: {
          size_t best = SIZE_MAX;
          for (const std::string& w : f.choices) {
            if (w.size() >= f.buf.size() && w.compare(0, f.buf.size(), f.buf) == 0) best = std::min(best, w.size() - f.buf.size());
          }
          total += best == SIZE_MAX ? 0 : best;
          break;
        }
        case Kind::Object: {
          std::vector<std::string> missing = missing_required(f.schema, f.seen_keys);
          size_t m = missing.size();
          switch (f.state) {
            case kObjStart:
              total += members_cost(f.schema, missing) + (m ? m - 1 : 0) + 1;
              break;
            case kObjKeyAfterComma:
              if (m > 0) {
                total += members_cost(f.schema, missing) + (m - 1) + 1;
              } else {
                size_t best = SIZE_MAX;
                if (closed_object(f)) {
                  for (const std::string& k : allowed_keys(f)) best = std::min(best, member_cost(f.schema, k));
                } else {
                  best = member_cost(f.schema, "");
                }
                total += (best == SIZE_MAX ? 0 : best) + 1;
              }
              break;
            case kObjColon:
              total += 1 + min_value(prop_of(f.schema, f.key)) + object_tail(f);
              break;
            default:  // a value in progress (counted above) or done: the rest of the object
              total += object_tail(f);
              break;
          }
          break;
        }
        case Kind::Array: {
          size_t min_items = (f.schema && f.schema->is_object()) ? f.schema->value("minItems", size_t{0}) : 0;
          const json* items = item_schema(f.schema);
          auto more = [&](size_t have) { return have < min_items ? (min_items - have) * (min_value(items) + 1) : 0; };
          switch (f.state) {
            case kArrStart:
              total += items_cost(items, min_items) + 1;
              break;
            case kArrValue:  // the item in progress is counted above
              total += more(f.count + 1) + 1;
              break;
            case kArrValueAfterComma:
              total += min_value(items) + more(f.count + 1) + 1;
              break;
            default:
              total += more(f.count) + 1;
              break;
          }
          break;
        }
      }
    }
    return total;
  }

  bool complete() const {
    if (done) return true;
    // A top-level number ends without a delimiter.
    return stack.size() == 1 && stack.back().kind == Kind::Number && number_complete(stack.back());
  }
};

JsonConstraint::JsonConstraint(const json& schema, bool any_object) : state_(std::make_unique<State>()) {
  if (any_object) {
    schema_ = std::make_shared<const json>(json{{"type", "object"}});
  } else {
    check_supported(schema);
    schema_ = std::make_shared<const json>(schema);
  }
  state_->push_value(schema_.get());
}

JsonConstraint::JsonConstraint(const JsonConstraint& other)
    : TextConstraint(other), schema_(other.schema_), state_(std::make_unique<State>(*other.state_)) {}

bool JsonConstraint::feed(char c) { return state_->feed(c); }

JsonConstraint::~JsonConstraint() = default;

bool JsonConstraint::accepts(std::string_view text, size_t budget) const {
  if (text.empty()) return false;  // a token must make progress
  State copy = *state_;
  for (char c : text) {
    if (!copy.feed(c)) return false;
  }
  return budget == SIZE_MAX || copy.min_completion() <= budget;
}

size_t JsonConstraint::min_completion() const { return state_->min_completion(); }

void JsonConstraint::advance(std::string_view text) {
  for (char c : text) {
    if (!state_->feed(c)) fail("constrained output rejected a character it had accepted");
  }
}

bool JsonConstraint::complete() const { return state_->complete(); }

}  // namespace kexa::server
