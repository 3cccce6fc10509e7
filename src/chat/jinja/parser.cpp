// Lexer and recursive-descent parser. The lexer follows Jinja2's lexer rules for the settings
// transformers uses (trim_blocks, lstrip_blocks, keep_trailing_newline off), because whitespace
// handling is where hand-written chat-template engines usually drift from Python.
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <set>

#include "chat/jinja/ast.h"
#include "util/error.h"

namespace kexa::jinja {
namespace {

constexpr int kMaxDepth = 200;  // nesting of expressions and blocks; deeper input is rejected

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // data, name, decoded string, operator
  int64_t ival = 0;
  double fval = 0;
  size_t offset = 0;
};

// Byte length of one Python-whitespace code point at s[pos], 0 when it is something else.
size_t space_at(std::string_view s, size_t pos) {
  auto c = static_cast<unsigned char>(s[pos]);
  if (c < 0x80) return is_py_space(c) ? 1 : 0;
  size_t n = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC0) ? 2 : 1;
  if (pos + n > s.size()) return 0;
  auto cps = decode_utf8(s.substr(pos, n));
  return (cps.size() == 1 && is_py_space(cps[0])) ? n : 0;
}

size_t skip_spaces(std::string_view s, size_t pos) {
  while (pos < s.size()) {
    size_t n = space_at(s, pos);
    if (!n) break;
    pos += n;
  }
  return pos;
}

// Python str.rstrip() on UTF-8.
std::string_view rstrip_py(std::string_view s) {
  while (!s.empty()) {
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && s.size() - start < 4) --start;
    if (space_at(s, start) == s.size() - start) {
      s = s.substr(0, start);
    } else {
      break;
    }
  }
  return s;
}

bool all_space(std::string_view s) {
  size_t p = skip_spaces(s, 0);
  return p == s.size() && !s.empty();
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) {
    // Jinja splits on \r\n, \r, \n and joins with \n, dropping one trailing newline.
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
      } else {
        src_.push_back(src[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  Pos pos_of(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line = static_cast<size_t>(it - line_starts_.begin());
    size_t start = line_starts_[line - 1];
    size_t col = utf8_length(std::string_view(src_).substr(start, std::min(offset, src_.size()) - start)) + 1;
    return Pos{static_cast<int>(line), static_cast<int>(col)};
  }

  [[noreturn]] void error(size_t offset, const std::string& msg) const {
    Pos p = pos_of(offset);
    fail("template syntax error at line ", p.line, ", column ", p.col, ": ", msg);
  }

  std::vector<Token> run() {
    std::string_view s = src_;
    size_t pos = 0;
    bool line_starting = true;
    while (pos < s.size()) {
      // Find the next tag opener.
      size_t t = pos;
      while (true) {
        t = s.find('{', t);
        if (t == std::string_view::npos || t + 1 >= s.size()) {
          t = std::string_view::npos;
          break;
        }
        char n = s[t + 1];
        if (n == '{' || n == '%' || n == '#') break;
        ++t;
      }
      if (t == std::string_view::npos) {
        emit_data(s.substr(pos), pos);
        break;
      }
      char kind = s[t + 1];
      char sign = (t + 2 < s.size() && (s[t + 2] == '-' || s[t + 2] == '+')) ? s[t + 2] : 0;
      std::string_view text = s.substr(pos, t - pos);
      bool raw = kind == '%' && is_raw_begin(s, t);
      text = strip_before(text, sign, kind != '{', line_starting);
      emit_data(text, pos);
      size_t after = t + 2 + (sign ? 1 : 0);
      if (raw) {
        pos = lex_raw(s, t);
      } else if (kind == '#') {
        pos = lex_comment(s, t, after);
      } else {
        pos = lex_tag(s, t, after, kind == '{');
      }
      line_starting = pos > 0 && s[pos - 1] == '\n';
    }
    tokens_.push_back(Token{Tok::Eof, "", 0, 0, s.size()});
    return std::move(tokens_);
  }

 private:
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;

  void emit_data(std::string_view text, size_t offset) {
    if (!text.empty()) tokens_.push_back(Token{Tok::Data, std::string(text), 0, 0, offset});
  }

  std::string_view strip_before(std::string_view text, char sign, bool block_or_comment, bool line_starting) const {
    if (sign == '-') return rstrip_py(text);
    if (sign != '+' && block_or_comment) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && all_space(text.substr(l_pos))) return text.substr(0, l_pos);
    }
    return text;
  }

  // {%(-|+|)\s*raw\s*(-%}\s*|%})
  static bool match_word_tag(std::string_view s, size_t t, const char* word, size_t* end_out) {
    size_t p = t + 2;
    if (p < s.size() && (s[p] == '-' || s[p] == '+')) ++p;
    p = skip_spaces(s, p);
    size_t wl = std::strlen(word);
    if (s.substr(p, wl) != word) return false;
    p += wl;
    size_t q = skip_spaces(s, p);
    if (q == p && q < s.size() && (std::isalnum(static_cast<unsigned char>(s[q])) || s[q] == '_')) return false;
    p = q;
    if (end_out) *end_out = p;
    return s.substr(p, 2) == "%}" || s.substr(p, 3) == "-%}" || s.substr(p, 3) == "+%}";
  }
  static bool is_raw_begin(std::string_view s, size_t t) {
    size_t p;
    return match_word_tag(s, t, "raw", &p) && s.substr(p, 3) != "+%}";
  }

  size_t lex_raw(std::string_view s, size_t t) {
    size_t p;
    match_word_tag(s, t, "raw", &p);
    if (s[p] == '-') {
      p = skip_spaces(s, p + 3);
    } else {
      p += 2;
    }
    // find {% endraw %}
    size_t q = p;
    while (true) {
      q = s.find("{%", q);
      if (q == std::string_view::npos) error(t, "Missing end of raw directive");
      size_t e;
      if (match_word_tag(s, q, "endraw", &e)) {
        char sign = (s[q + 2] == '-' || s[q + 2] == '+') ? s[q + 2] : 0;
        std::string_view text = s.substr(p, q - p);
        bool ls = p > 0 && s[p - 1] == '\n';
        emit_data(strip_before(text, sign, true, ls), p);
        return finish_block_end(s, e);
      }
      q += 2;
    }
  }

  // After the tag body: at s[e] is "%}", "-%}" or "+%}".
  size_t finish_block_end(std::string_view s, size_t e) {
    if (s[e] == '-') return skip_spaces(s, e + 3);
    if (s[e] == '+') return e + 3;
    e += 2;
    if (e < s.size() && s[e] == '\n') ++e;  // trim_blocks
    return e;
  }

  size_t lex_comment(std::string_view s, size_t t, size_t after) {
    size_t q = after;
    while (true) {
      q = s.find("#}", q);
      if (q == std::string_view::npos) error(t, "Missing end of comment tag");
      // The end is the first "#}" (optionally preceded by - or +) after the opener.
      if (q > after && s[q - 1] == '-') return skip_spaces(s, q + 2);
      if (q > after && s[q - 1] == '+') return q + 2;
      q += 2;
      if (q < s.size() && s[q] == '\n') ++q;
      return q;
    }
  }

  size_t lex_tag(std::string_view s, size_t t, size_t p, bool variable) {
    tokens_.push_back(Token{variable ? Tok::VarBegin : Tok::BlockBegin, "", 0, 0, t});
    std::vector<char> balance;
    while (true) {
      if (p >= s.size()) error(t, variable ? "unexpected end of template, expected end of print statement ('}}')"
                                           : "unexpected end of template, expected end of block ('%}')");
      if (balance.empty()) {
        if (variable) {
          if (s.substr(p, 3) == "-}}") {
            tokens_.push_back(Token{Tok::VarEnd, "", 0, 0, p});
            return skip_spaces(s, p + 3);
          }
          if (s.substr(p, 2) == "}}") {
            tokens_.push_back(Token{Tok::VarEnd, "", 0, 0, p});
            return p + 2;
          }
        } else if (s.substr(p, 3) == "+%}" || s.substr(p, 3) == "-%}" || s.substr(p, 2) == "%}") {
          tokens_.push_back(Token{Tok::BlockEnd, "", 0, 0, p});
          return finish_block_end(s, p);
        }
      }
      size_t sp = skip_spaces(s, p);
      if (sp != p) {
        p = sp;
        continue;
      }
      unsigned char c = static_cast<unsigned char>(s[p]);
      if (std::isdigit(c)) {
        p = lex_number(s, p);
      } else if (std::isalpha(c) || c == '_') {
        size_t q = p;
        while (q < s.size() && (std::isalnum(static_cast<unsigned char>(s[q])) || s[q] == '_')) ++q;
        tokens_.push_back(Token{Tok::Name, std::string(s.substr(p, q - p)), 0, 0, p});
        p = q;
      } else if (c == '\'' || c == '"') {
        p = lex_string(s, p);
      } else {
        static const char* ops[] = {"**", "//", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                    "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
        const char* found = nullptr;
        for (const char* op : ops) {
          if (s.substr(p, std::strlen(op)) == op) {
            found = op;
            break;
          }
        }
        if (!found) {
          std::string ch(1, s[p]);
          if (c >= 0x80) {
            auto cps = decode_utf8(s.substr(p, 4));
            ch.clear();
            if (!cps.empty()) append_utf8(ch, cps[0]);
          }
          error(p, "unexpected char '" + ch + "'");
        }
        std::string op = found;
        if (op == "{" || op == "(" || op == "[") {
          balance.push_back(op == "{" ? '}' : op == "(" ? ')' : ']');
        } else if (op == "}" || op == ")" || op == "]") {
          if (balance.empty()) error(p, "unexpected '" + op + "'");
          if (balance.back() != op[0]) error(p, "unexpected '" + op + "', expected '" + std::string(1, balance.back()) + "'");
          balance.pop_back();
        }
        tokens_.push_back(Token{Tok::Op, op, 0, 0, p});
        p += op.size();
      }
    }
  }

  size_t lex_number(std::string_view s, size_t p) {
    auto digits = [&](size_t q, auto pred) {
      size_t start = q;
      while (q < s.size() && (pred(s[q]) || (s[q] == '_' && q > start && q + 1 < s.size() && pred(s[q + 1])))) ++q;
      return q;
    };
    auto isdig = [](char ch) { return ch >= '0' && ch <= '9'; };
    // Float: digits (. digits)? e[+-]digits | digits . digits
    size_t q = digits(p, isdig);
    size_t f = q;
    bool is_float = false;
    if (f + 1 < s.size() && s[f] == '.' && isdig(s[f + 1])) {
      f = digits(f + 1, isdig);
      is_float = true;
    }
    if (f < s.size() && (s[f] == 'e' || s[f] == 'E')) {
      size_t e = f + 1;
      if (e < s.size() && (s[e] == '+' || s[e] == '-')) ++e;
      if (e < s.size() && isdig(s[e])) {
        f = digits(e, isdig);
        is_float = true;
      }
    }
    if (is_float) {
      std::string txt;
      for (size_t i = p; i < f; ++i)
        if (s[i] != '_') txt.push_back(s[i]);
      tokens_.push_back(Token{Tok::Float, txt, 0, std::strtod(txt.c_str(), nullptr), p});
      return f;
    }
    int base = 10;
    size_t start = p;
    if (s[p] == '0' && p + 1 < s.size() && std::strchr("bBoOxX", s[p + 1]) && s[p + 1] != '\0') {
      char k = static_cast<char>(std::tolower(static_cast<unsigned char>(s[p + 1])));
      base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
      start = p + 2;
    }
    auto valid = [&](char ch) {
      int v = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0'
              : std::isalpha(static_cast<unsigned char>(ch)) ? std::tolower(static_cast<unsigned char>(ch)) - 'a' + 10 : 99;
      return v < base;
    };
    size_t e = start;
    while (e < s.size() && (valid(s[e]) || (s[e] == '_' && e + 1 < s.size() && valid(s[e + 1])))) ++e;
    if (base != 10 && e == start) {  // "0x" alone: the lexer takes "0" as the number
      e = p + 1;
      base = 10;
      start = p;
    }
    if (base == 10 && s[p] == '0') {  // decimal zero is "0(_?0)*"
      e = p + 1;
      while (e < s.size() && (s[e] == '0' || (s[e] == '_' && e + 1 < s.size() && s[e + 1] == '0'))) ++e;
    }
    unsigned __int128 v = 0;
    for (size_t i = start; i < e; ++i) {
      if (s[i] == '_') continue;
      int d = std::isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0' : std::tolower(static_cast<unsigned char>(s[i])) - 'a' + 10;
      v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
      if (v > static_cast<unsigned __int128>(INT64_MAX)) error(p, "integer literal too large");
    }
    tokens_.push_back(Token{Tok::Int, std::string(s.substr(p, e - p)), static_cast<int64_t>(v), 0, p});
    return e;
  }

  size_t lex_string(std::string_view s, size_t p) {
    char quote = s[p];
    size_t q = p + 1;
    while (q < s.size() && s[q] != quote) {
      if (s[q] == '\\') ++q;
      ++q;
    }
    if (q >= s.size()) error(p, "unexpected char '" + std::string(1, quote) + "'");
    std::string_view body = s.substr(p + 1, q - p - 1);
    std::string out;
    auto hexval = [](char ch) -> int {
      if (ch >= '0' && ch <= '9') return ch - '0';
      if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
      if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
      return -1;
    };
    for (size_t i = 0; i < body.size(); ++i) {
      char ch = body[i];
      if (ch != '\\') {
        out.push_back(ch);
        continue;
      }
      if (i + 1 >= body.size()) error(p, "\\ at end of string");
      char e = body[++i];
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            int h = i + 1 + k < body.size() ? hexval(body[i + 1 + k]) : -1;
            if (h < 0) error(p, std::string("truncated \\") + e + " escape");
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > 0x10FFFF) error(p, "illegal Unicode character");
          append_utf8(out, cp);
          i += n;
          break;
        }
        case 'N': error(p, "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
              cp = cp * 8 + static_cast<uint32_t>(body[++i] - '0');
            append_utf8(out, cp);
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    tokens_.push_back(Token{Tok::String, std::move(out), 0, 0, p});
    return q + 1;
  }
};

// ---------------------------------------------------------------------------------------------

class Parser {
 public:
  explicit Parser(std::string_view src) : lexer_(src), toks_(lexer_.run()) {}

  std::unique_ptr<Program> run() {
    auto prog = std::make_unique<Program>();
    prog->body = subparse({});
    return prog;
  }

 private:
  Lexer lexer_;
  std::vector<Token> toks_;
  size_t i_ = 0;
  int depth_ = 0;
  std::vector<std::string> open_blocks_;

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.error_here("template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(i_ + n, toks_.size() - 1)]; }
  Pos pos() const { return lexer_.pos_of(cur().offset); }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Data: return "template data";
      case Tok::VarBegin: return "'{{'";
      case Tok::VarEnd: return "end of print statement";
      case Tok::BlockBegin: return "'{%'";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::Name: return "'" + t.text + "'";
      case Tok::String: return "string";
      case Tok::Int: return "integer";
      case Tok::Float: return "float";
      case Tok::Op: return "'" + t.text + "'";
      case Tok::Eof: return "end of template";
    }
    return "?";
  }

  [[noreturn]] void error_here(const std::string& msg) const { lexer_.error(cur().offset, msg); }

  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error_here(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error_here("expected a name, got " + describe(cur()));
    std::string n = cur().text;
    advance();
    return n;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) error_here("expected end of statement block, got " + describe(cur()));
    advance();
  }

  ExprPtr make(Expr::Type t, Pos p) { return std::make_unique<Expr>(t, p); }

  // ---- statements ----

  // Parses until a block tag whose first name is one of `ends`; leaves the stream at that name.
  // The body of a block statement through its {% end<name> %}. A macro or call block is a new
  // function: 'break' and 'continue' in it do not belong to an enclosing loop.
  Body block_body(const std::string& name, bool function_scope = false) {
    open_blocks_.push_back(name);
    const int saved = loop_depth_;
    if (function_scope) loop_depth_ = 0;
    Body body = subparse({"end" + name});
    loop_depth_ = saved;
    open_blocks_.pop_back();
    advance();
    expect_block_end();
    return body;
  }

  Body subparse(const std::set<std::string>& ends) {
    DepthGuard g(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (!ends.empty()) {
          std::string expected;
          for (const auto& e : ends) expected += (expected.empty() ? "'" : " or '") + e + "'";
          error_here("unexpected end of template; Jinja was looking for " + expected +
                     (open_blocks_.empty() ? "" : " to close '" + open_blocks_.back() + "'"));
        }
        return body;
      }
      if (t.type == Tok::Data) {
        auto s = std::make_unique<Stmt>(Stmt::Type::Text, pos());
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == Tok::VarBegin) {
        auto s = std::make_unique<Stmt>(Stmt::Type::Print, pos());
        advance();
        s->expr = parse_tuple(true);
        if (cur().type != Tok::VarEnd) error_here("expected end of print statement, got " + describe(cur()));
        advance();
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        advance();
        if (cur().type == Tok::Name && ends.count(cur().text)) return body;
        body.push_back(parse_statement());
      } else {
        error_here("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    if (cur().type != Tok::Name) error_here("tag name expected");
    std::string kw = cur().text;
    Pos p = pos();
    if (kw == "if") return parse_if();
    if (kw == "for") return parse_for();
    if (kw == "set") return parse_set();
    if (kw == "macro") return parse_macro();
    if (kw == "call") return parse_call_block();
    if (kw == "filter") return parse_filter_block();
    if (kw == "with") return parse_with();
    if (kw == "generation")  // transformers' AssistantTracker block: renders its body
      return block_statement(Stmt::Type::Scope, "generation", false, [](Stmt&) {});
    if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) error_here("'" + kw + "' outside of a loop");
      advance();
      expect_block_end();
      return std::make_unique<Stmt>(kw == "break" ? Stmt::Type::Break : Stmt::Type::Continue, p);
    }
    if (kw == "extends" || kw == "include" || kw == "import" || kw == "from" || kw == "block")
      error_here("'" + kw + "' is not supported in chat templates (single template, no loader)");
    error_here("Encountered unknown tag '" + kw + "'" +
               (open_blocks_.empty() ? "" : "; the innermost block that needs closing is '" + open_blocks_.back() + "'"));
  }

  int loop_depth_ = 0;

  StmtPtr parse_if() {
    auto s = std::make_unique<Stmt>(Stmt::Type::If, pos());
    advance();
    open_blocks_.push_back("if");
    ExprPtr cond = parse_tuple(false, false);
    expect_block_end();
    while (true) {
      Body body = subparse({"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      std::string kw = cur().text;
      advance();
      if (kw == "elif") {
        cond = parse_tuple(false, false);
        expect_block_end();
      } else if (kw == "else") {
        expect_block_end();
        Body eb = subparse({"endif"});
        advance();
        s->branches.emplace_back(nullptr, std::move(eb));
        break;
      } else {
        break;
      }
    }
    open_blocks_.pop_back();
    expect_block_end();
    return s;
  }

  Target parse_target(bool allow_ns) {
    Target t;
    bool paren = skip_op("(");
    t.names.push_back(expect_name());
    if (allow_ns && is_op(".")) {
      advance();
      t.ns_attr = expect_name();
      if (paren) expect_op(")");
      return t;
    }
    while (skip_op(",")) {
      t.unpack = true;
      if (cur().type != Tok::Name) break;
      t.names.push_back(expect_name());
    }
    if (paren) {
      expect_op(")");
      t.unpack = true;
    }
    return t;
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<Stmt>(Stmt::Type::For, pos());
    advance();
    open_blocks_.push_back("for");
    s->target = parse_target(false);
    if (!skip_name("in")) error_here("expected 'in', got " + describe(cur()));
    s->expr = parse_tuple(false, /*with_condexpr=*/false);
    if (skip_name("if")) s->cond = parse_expression();
    if (skip_name("recursive")) s->recursive = true;
    expect_block_end();
    ++loop_depth_;
    s->body = subparse({"endfor", "else"});
    --loop_depth_;
    if (cur().text == "else") {
      advance();
      expect_block_end();
      s->else_body = subparse({"endfor"});
    }
    advance();
    expect_block_end();
    open_blocks_.pop_back();
    return s;
  }

  std::vector<ExprPtr> parse_filter_chain() {
    std::vector<ExprPtr> chain;
    do {
      Pos p = pos();
      std::string name = expect_name();
      auto f = make(Expr::Type::Filter, p);
      f->name = name;
      if (is_op("(")) parse_call_args(f->args);
      chain.push_back(std::move(f));
    } while (skip_op("|"));
    return chain;
  }

  StmtPtr parse_set() {
    Pos p = pos();
    advance();
    Target target = parse_target(true);
    if (skip_op("=")) {
      auto s = std::make_unique<Stmt>(Stmt::Type::Set, p);
      s->target = std::move(target);
      s->expr = parse_tuple(false);
      expect_block_end();
      return s;
    }
    auto s = std::make_unique<Stmt>(Stmt::Type::SetBlock, p);
    s->target = std::move(target);
    if (skip_op("|")) s->filters = parse_filter_chain();
    expect_block_end();
    s->body = block_body("set");
    return s;
  }

  void parse_signature(std::vector<MacroParam>& params) {
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam mp;
      mp.name = expect_name();
      if (skip_op("=")) mp.default_value = parse_expression();
      params.push_back(std::move(mp));
    }
    advance();
  }

  // `{% keyword header %} body {% endkeyword %}`, the stream at `keyword`: `header(stmt)` parses
  // what stands between the keyword and the tag's end.
  template <typename Header>
  StmtPtr block_statement(Stmt::Type type, const std::string& keyword, bool function_scope, Header&& header) {
    auto s = std::make_unique<Stmt>(type, pos());
    advance();
    header(*s);
    expect_block_end();
    s->body = block_body(keyword, function_scope);
    return s;
  }

  StmtPtr parse_macro() {
    return block_statement(Stmt::Type::Macro, "macro", true, [&](Stmt& s) {
      s.text = expect_name();
      parse_signature(s.params);
    });
  }

  StmtPtr parse_call_block() {
    return block_statement(Stmt::Type::CallBlock, "call", true, [&](Stmt& s) {
      if (is_op("(")) parse_signature(s.params);
      s.expr = parse_expression();
      if (s.expr->type != Expr::Type::Call) error_here("expected call");
    });
  }

  StmtPtr parse_filter_block() {
    return block_statement(Stmt::Type::FilterBlock, "filter", false,
                           [&](Stmt& s) { s.filters = parse_filter_chain(); });
  }

  StmtPtr parse_with() {
    return block_statement(Stmt::Type::With, "with", false, [&](Stmt& s) {
      while (cur().type != Tok::BlockEnd) {
        if (!s.assigns.empty()) expect_op(",");
        Target t = parse_target(false);
        expect_op("=");
        s.assigns.emplace_back(std::move(t), parse_expression());
      }
    });
  }

  // ---- expressions ----

  ExprPtr parse_tuple(bool print_context, bool with_condexpr = true) {
    (void)print_context;
    Pos p = pos();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) {
        if (!skip_op(",")) break;
        is_tuple = true;
        if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")") || is_name("if") ||
            is_name("recursive"))
          break;
      }
      items.push_back(with_condexpr ? parse_expression() : parse_or());
    }
    if (!is_tuple) return std::move(items[0]);
    auto t = make(Expr::Type::Tuple, p);
    t->items = std::move(items);
    return t;
  }

  ExprPtr parse_expression() {
    DepthGuard g(*this);
    Pos p = pos();
    ExprPtr e = parse_or();
    while (skip_name("if")) {
      auto c = make(Expr::Type::Cond, p);
      c->b = std::move(e);
      c->a = parse_or();
      if (skip_name("else")) c->c = parse_expression();
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(const char* op, ExprPtr l, ExprPtr r, Pos p) {
    auto b = make(Expr::Type::Binary, p);
    b->name = op;
    b->a = std::move(l);
    b->b = std::move(r);
    return b;
  }

  // One left-associative level: operand (op operand)*, where match() consumes an operator of the
  // level and returns it, or returns nullptr.
  template <typename Match>
  ExprPtr left_assoc(ExprPtr (Parser::*operand)(), Match match) {
    Pos p = pos();
    ExprPtr l = (this->*operand)();
    while (const char* op = match()) l = binary(op, std::move(l), (this->*operand)(), p);
    return l;
  }
  // Consumes the current token if it is one of the operators.
  const char* take_op(std::initializer_list<const char*> ops) {
    for (const char* op : ops) {
      if (is_op(op)) {
        advance();
        return op;
      }
    }
    return nullptr;
  }

  ExprPtr parse_or() {
    return left_assoc(&Parser::parse_and, [&] { return skip_name("or") ? "or" : nullptr; });
  }
  ExprPtr parse_and() {
    return left_assoc(&Parser::parse_not, [&] { return skip_name("and") ? "and" : nullptr; });
  }
  ExprPtr parse_not() {
    DepthGuard g(*this);
    if (is_name("not")) {
      Pos p = pos();
      advance();
      auto n = make(Expr::Type::Not, p);
      n->a = parse_not();
      return n;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    Pos p = pos();
    ExprPtr first = parse_math1();
    std::vector<std::pair<std::string, ExprPtr>> ops;
    while (true) {
      if (cur().type == Tok::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        std::string op = cur().text;
        advance();
        ops.emplace_back(op, parse_math1());
      } else if (skip_name("in")) {
        ops.emplace_back("in", parse_math1());
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        advance();
        advance();
        ops.emplace_back("notin", parse_math1());
      } else {
        break;
      }
    }
    if (ops.empty()) return first;
    auto c = make(Expr::Type::Compare, p);
    c->a = std::move(first);
    c->ops = std::move(ops);
    return c;
  }
  ExprPtr parse_math1() {
    return left_assoc(&Parser::parse_concat, [&] { return take_op({"+", "-"}); });
  }
  ExprPtr parse_concat() {
    return left_assoc(&Parser::parse_math2, [&] { return take_op({"~"}); });
  }
  ExprPtr parse_math2() {
    return left_assoc(&Parser::parse_pow, [&] { return take_op({"*", "/", "//", "%"}); });
  }
  ExprPtr parse_pow() {
    Pos p = pos();
    ExprPtr l = parse_unary(true);
    while (skip_op("**")) l = binary("**", std::move(l), parse_unary(true), p);
    return l;
  }
  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(*this);
    Pos p = pos();
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      bool neg = is_op("-");
      advance();
      node = make(neg ? Expr::Type::Neg : Expr::Type::Pos, p);
      node->a = parse_unary(false);
    } else {
      node = parse_primary();
    }
    return parse_trailers(std::move(node), with_filter);
  }

  ExprPtr parse_primary() {
    DepthGuard g(*this);
    Pos p = pos();
    const Token& t = cur();
    if (t.type == Tok::Name) {
      std::string n = t.text;
      advance();
      auto e = make(Expr::Type::Literal, p);
      if (n == "true" || n == "True") {
        e->literal = Value::boolean(true);
      } else if (n == "false" || n == "False") {
        e->literal = Value::boolean(false);
      } else if (n == "none" || n == "None") {
        e->literal = Value::none();
      } else {
        e = make(Expr::Type::Name, p);
        e->name = n;
      }
      return e;
    }
    if (t.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) {  // adjacent literals concatenate, as in Python
        s += cur().text;
        advance();
      }
      auto e = make(Expr::Type::Literal, p);
      e->literal = Value::string(std::move(s));
      return e;
    }
    if (t.type == Tok::Int || t.type == Tok::Float) {
      auto e = make(Expr::Type::Literal, p);
      e->literal = t.type == Tok::Int ? Value::integer(t.ival) : Value::number(t.fval);
      advance();
      return e;
    }
    if (is_op("(")) {
      advance();
      if (skip_op(")")) {
        auto e = make(Expr::Type::Tuple, p);
        return e;
      }
      ExprPtr first = parse_expression();
      if (skip_op(")")) return first;
      auto e = make(Expr::Type::Tuple, p);
      e->items.push_back(std::move(first));
      while (skip_op(",")) {
        if (is_op(")")) break;
        e->items.push_back(parse_expression());
      }
      expect_op(")");
      return e;
    }
    if (is_op("[")) return parse_display(Expr::Type::List, "]", p);
    if (is_op("{")) return parse_display(Expr::Type::Dict, "}", p);
    error_here("unexpected " + describe(t));
  }

  // A list "[a, b]" or dict "{k: v, ...}" literal from its opening bracket; a trailing comma is
  // allowed. Dict items are stored key, value, key, value.
  ExprPtr parse_display(Expr::Type type, const char* close, Pos p) {
    advance();
    auto e = make(type, p);
    while (!is_op(close)) {
      if (!e->items.empty()) expect_op(",");
      if (is_op(close)) break;
      e->items.push_back(parse_expression());
      if (type == Expr::Type::Dict) {
        expect_op(":");
        e->items.push_back(parse_expression());
      }
    }
    advance();
    return e;
  }

  // `callee(args)`, the stream at "(": calls follow attributes, subscripts, filters and tests alike.
  ExprPtr parse_call(ExprPtr callee, Pos p) {
    auto e = make(Expr::Type::Call, p);
    e->a = std::move(callee);
    parse_call_args(e->args);
    return e;
  }



  ExprPtr parse_subscript(ExprPtr node, Pos p) {
    // [index] or [start:stop:step]
    ExprPtr start, stop, step;
    bool is_slice = false;
    if (!is_op(":")) start = parse_expression();
    if (skip_op(":")) {
      is_slice = true;
      if (!is_op("]") && !is_op(":")) stop = parse_expression();
      if (skip_op(":")) {
        if (!is_op("]")) step = parse_expression();
      }
    }
    if (!is_slice && is_op(",")) {  // x[a, b] indexes with a tuple
      auto t = make(Expr::Type::Tuple, p);
      t->items.push_back(std::move(start));
      while (skip_op(",")) {
        if (is_op("]")) break;
        t->items.push_back(parse_expression());
      }
      start = std::move(t);
    }
    expect_op("]");
    if (is_slice) {
      auto e = make(Expr::Type::Slice, p);
      e->a = std::move(node);
      e->b = std::move(start);
      e->c = std::move(stop);
      e->d = std::move(step);
      return e;
    }
    auto e = make(Expr::Type::GetItem, p);
    e->a = std::move(node);
    e->b = std::move(start);
    return e;
  }

  void parse_call_args(CallArgs& args) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) {
        bool dbl = is_op("**");
        ExprPtr& slot = dbl ? args.double_star : args.star;
        if (slot) error_here(dbl ? "only one **kwargs argument is allowed" : "only one *args argument is allowed");
        advance();
        slot = parse_expression();
        continue;
      }
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        args.keyword.emplace_back(key, parse_expression());
      } else {
        if (!args.keyword.empty()) error_here("positional argument follows keyword argument");
        args.positional.push_back(parse_expression());
      }
    }
    advance();
  }

  // What may follow an operand: attributes, subscripts and calls, then (with_filter) filters and
  // tests, each result callable again. As in Jinja2, no attribute or subscript follows a filter
  // or a test.
  ExprPtr parse_trailers(ExprPtr node, bool with_filter) {
    bool filtered = false;
    while (true) {
      DepthGuard g(*this);
      Pos p = pos();
      if (!filtered && is_op(".")) {
        node = parse_attribute(std::move(node), p);
      } else if (!filtered && is_op("[")) {
        advance();
        node = parse_subscript(std::move(node), p);
      } else if (is_op("(")) {
        node = parse_call(std::move(node), p);
      } else if (with_filter && is_op("|")) {
        node = parse_filter(std::move(node), p);
        filtered = true;
      } else if (with_filter && is_name("is")) {
        node = parse_test(std::move(node), p);
        filtered = true;
      } else {
        return node;
      }
    }
  }

  // `.name` or `.0`, the stream at ".".
  ExprPtr parse_attribute(ExprPtr node, Pos p) {
    advance();
    if (cur().type == Tok::Name) {
      auto e = make(Expr::Type::GetAttr, p);
      e->a = std::move(node);
      e->name = cur().text;
      advance();
      return e;
    }
    if (cur().type == Tok::Int) {
      auto e = make(Expr::Type::GetItem, p);
      e->a = std::move(node);
      e->b = make(Expr::Type::Literal, p);
      e->b->literal = Value::integer(cur().ival);
      advance();
      return e;
    }
    error_here("expected name or number after '.'");
  }

  // `| name(args)`, the stream at "|".
  ExprPtr parse_filter(ExprPtr node, Pos p) {
    advance();
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    auto f = make(Expr::Type::Filter, p);
    f->name = name;
    f->a = std::move(node);
    if (is_op("(")) parse_call_args(f->args);
    return f;
  }

  // `is [not] name(args)` or `is name arg`, the stream at "is".
  ExprPtr parse_test(ExprPtr node, Pos p) {
    advance();
    auto t = make(Expr::Type::Test, p);
    if (skip_name("not")) t->negated = true;
    t->name = expect_name();
    while (skip_op(".")) t->name += "." + expect_name();
    t->a = std::move(node);
    if (is_op("(")) {
      parse_call_args(t->args);
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error_here("You cannot chain multiple tests with is");
      t->args.positional.push_back(parse_trailers(parse_primary(), false));
    }
    return t;
  }

};

}  // namespace

std::unique_ptr<Program> parse(std::string_view source) {
  Parser p(source);
  return p.run();
}

}  // namespace kexa::jinja
