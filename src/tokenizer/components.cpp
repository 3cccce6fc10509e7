#include "tokenizer/components.h"

#include <nlohmann/json.hpp>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/steps_impl.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace kexa::tok {

namespace {

std::string replace_all(std::string_view s, const Matcher& m, std::string_view content) {
  std::vector<Span> spans;
  find_matches(m, s, spans);
  if (spans.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size());
  uint32_t prev = 0;
  for (const Span& sp : spans) {
    out.append(s.substr(prev, sp.begin - prev));
    out.append(content);
    prev = sp.end;
  }
  out.append(s.substr(prev));
  return out;
}

bool is_ws(uint32_t cp) { return char_class(cp) == kSpace; }

// HF's Replace, as a normalizer or a decoder: every match of "pattern" (a String or a Regex)
// becomes "content" (replace_all).
template <typename Step>
void read_replace(Step& st, const nlohmann::json& j, const char* what, const std::string& where) {
  st.kind = Step::kReplace;
  if (!j.contains("pattern")) fail(where, ": Replace ", what, " without \"pattern\"");
  st.pattern = compile_pattern(j["pattern"], where);
  st.content = str_or(j, "content", "");
}

}  // namespace

// ----------------------------------------------------------------------------- normalizers

struct NormalizerStep {
  enum Kind { kForm, kLower, kReplace, kPrepend, kStrip, kStripAccents } kind = kForm;
  NormForm form = NormForm::NFC;
  std::shared_ptr<const Matcher> pattern;
  std::string content;
  bool left = true, right = true;

  // The step of one component of type `type` (never "Sequence"); errors name `where`.
  static NormalizerStep read(const std::string& type, const nlohmann::json& j, const std::string& where);
};

template class Steps<Normalizer, NormalizerStep>;

NormalizerStep NormalizerStep::read(const std::string& type, const nlohmann::json& j, const std::string& where) {
  NormalizerStep st;
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    st.form = type == "NFC" ? NormForm::NFC : type == "NFD" ? NormForm::NFD
            : type == "NFKC" ? NormForm::NFKC : NormForm::NFKD;
  } else if (type == "Lowercase") {
    st.kind = kLower;
  } else if (type == "Replace") {
    read_replace(st, j, "normalizer", where);
  } else if (type == "Prepend") {
    st.kind = kPrepend;
    st.content = str_or(j, "prepend", "");
  } else if (type == "Strip") {
    st.kind = kStrip;
    st.left = bool_or(j, "strip_left", true);
    st.right = bool_or(j, "strip_right", true);
  } else if (type == "StripAccents") {
    st.kind = kStripAccents;
  } else {
    fail(where, ": unsupported normalizer type '", type, "'");
  }
  return st;
}

Normalizer Normalizer::from_json(const nlohmann::json& j, const std::string& where) {
  return read(j, "normalizer", "normalizers", where);
}

Normalizer Normalizer::nfc() { return of({Step{}}); }

std::string Normalizer::apply(std::string_view in) const {
  std::string s(in);
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::kForm: s = normalize(s, st.form); break;
      case Step::kLower: s = to_lower(s); break;
      case Step::kReplace: s = replace_all(s, *st.pattern, st.content); break;
      case Step::kPrepend:
        if (!s.empty()) s.insert(0, st.content);
        break;
      case Step::kStrip: {
        size_t b = 0, e = s.size();
        if (st.left)
          while (b < e) {
            Utf8Char c = decode_utf8(s, b);
            if (!is_ws(c.cp)) break;
            b += c.len;
          }
        if (st.right)
          while (e > b) {
            size_t k = e - 1;
            while (k > b && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80) --k;
            Utf8Char c = decode_utf8(s, k);
            if (c.len != e - k || !is_ws(c.cp)) break;
            e = k;
          }
        s = s.substr(b, e - b);
        break;
      }
      case Step::kStripAccents: {
        std::string out;
        for (size_t i = 0; i < s.size();) {
          Utf8Char c = decode_utf8(s, i);
          if (!(c.cp != kInvalid && char_class(c.cp) == kMark)) out.append(s, i, c.len);
          i += c.len;
        }
        s = std::move(out);
        break;
      }
    }
  }
  return s;
}

// ----------------------------------------------------------------------------- decoders

struct DecoderStep {
  enum Kind { kByteLevel, kMetaspace, kByteFallback, kFuse, kStrip, kReplace, kWordPiece, kBpeSuffix } kind = kByteLevel;
  std::string content;  // Metaspace replacement, Strip content, Replace content, suffix/prefix
  bool prepend = true;  // Metaspace: prepend_scheme != never
  int64_t start = 0, stop = 0;
  bool cleanup = false;
  std::shared_ptr<const Matcher> pattern;

  // The step of one component of type `type` (never "Sequence"); errors name `where`.
  static DecoderStep read(const std::string& type, const nlohmann::json& j, const std::string& where);
};

template class Steps<Decoder, DecoderStep>;

DecoderStep DecoderStep::read(const std::string& type, const nlohmann::json& j, const std::string& where) {
  DecoderStep st;
  if (type == "ByteLevel") {
    st.kind = kByteLevel;
  } else if (type == "Metaspace") {
    st.kind = kMetaspace;
    st.content = str_or(j, "replacement", "\xE2\x96\x81");
    std::string scheme = str_or(j, "prepend_scheme", "");
    st.prepend = scheme.empty() ? bool_or(j, "add_prefix_space", true) : scheme != "never";
  } else if (type == "ByteFallback") {
    st.kind = kByteFallback;
  } else if (type == "Fuse") {
    st.kind = kFuse;
  } else if (type == "Strip") {
    st.kind = kStrip;
    st.content = str_or(j, "content", " ");
    st.start = int_or(j, "start", 0);
    st.stop = int_or(j, "stop", 0);
  } else if (type == "Replace") {
    read_replace(st, j, "decoder", where);
  } else if (type == "WordPiece") {
    st.kind = kWordPiece;
    st.content = str_or(j, "prefix", "##");
    st.cleanup = bool_or(j, "cleanup", true);
  } else if (type == "BPEDecoder") {
    st.kind = kBpeSuffix;
    st.content = str_or(j, "suffix", "</w>");
  } else {
    fail(where, ": unsupported decoder type '", type, "'");
  }
  return st;
}

namespace {

// "<0x4A>" -> 0x4A, or -1.
int byte_token(std::string_view t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  int h = hex(t[3]), l = hex(t[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

}  // namespace

Decoder Decoder::from_json(const nlohmann::json& j, const std::string& where) {
  return read(j, "decoder", "decoders", where);
}

Decoder Decoder::byte_level() { return of({Step{}}); }

Decoder Decoder::sentencepiece() {
  Decoder d;
  Step rep;
  rep.kind = Step::kReplace;
  rep.pattern = compile_pattern(nlohmann::json{{"String", "\xE2\x96\x81"}}, "sentencepiece decoder");
  rep.content = " ";
  d.steps_.push_back(std::move(rep));
  Step bf;
  bf.kind = Step::kByteFallback;
  d.steps_.push_back(std::move(bf));
  Step fuse;
  fuse.kind = Step::kFuse;
  d.steps_.push_back(std::move(fuse));
  Step strip;
  strip.kind = Step::kStrip;
  strip.content = " ";
  strip.start = 1;
  d.steps_.push_back(std::move(strip));
  return d;
}

bool Decoder::is_byte_level_only() const {
  return steps_.size() == 1 && steps_[0].kind == Step::kByteLevel;
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  if (steps_.empty()) {
    // HF joins with spaces when there is no decoder.
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  std::string tmp;
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::kByteLevel: {
        std::string all;
        for (const std::string& t : tokens) {
          if (unmap_byte_level(t, tmp)) all += tmp;
          else all += t;
        }
        tokens.assign(1, std::move(all));
        break;
      }
      case Step::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string out;
          const std::string& t = tokens[i];
          for (size_t p = 0; p < t.size();) {
            if (t.compare(p, st.content.size(), st.content) == 0) {
              if (!(i == 0 && st.prepend)) out += ' ';
              p += st.content.size();
            } else {
              out += t[p++];
            }
          }
          tokens[i] = std::move(out);
        }
        break;
      case Step::kByteFallback: {
        std::vector<std::string> out;
        std::string bytes;
        bool in_bytes = false;
        for (std::string& t : tokens) {
          int b = byte_token(t);
          if (b >= 0) {
            bytes += char(b);
            in_bytes = true;
            continue;
          }
          if (in_bytes) {
            out.push_back(std::move(bytes));
            bytes.clear();
            in_bytes = false;
          }
          out.push_back(std::move(t));
        }
        if (in_bytes) out.push_back(std::move(bytes));
        tokens = std::move(out);
        break;
      }
      case Step::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Step::kStrip:
        for (std::string& t : tokens) {
          size_t b = 0, e = t.size();
          const std::string& c = st.content;
          for (int64_t k = 0; k < st.start && b + c.size() <= e && t.compare(b, c.size(), c) == 0; ++k) b += c.size();
          for (int64_t k = 0; k < st.stop && e >= b + c.size() && t.compare(e - c.size(), c.size(), c) == 0; ++k) e -= c.size();
          t = t.substr(b, e - b);
        }
        break;
      case Step::kReplace:
        for (std::string& t : tokens) t = replace_all(t, *st.pattern, st.content);
        break;
      case Step::kWordPiece:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string& t = tokens[i];
          if (i != 0) {
            if (t.compare(0, st.content.size(), st.content) == 0) t = t.substr(st.content.size());
            else t.insert(0, " ");
          }
        }
        break;
      case Step::kBpeSuffix:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string& t = tokens[i];
          const bool last = i + 1 == tokens.size();
          for (size_t p = t.find(st.content); p != std::string::npos; p = t.find(st.content, p))
            t.replace(p, st.content.size(), last ? "" : " ");
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace kexa::tok
