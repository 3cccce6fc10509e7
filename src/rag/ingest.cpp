#include "rag/ingest.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iterator>
#include <memory>
#include <mutex>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <nlohmann/json.hpp>
#include <poppler/cpp/poppler-document.h>
#include <poppler/cpp/poppler-global.h>
#include <poppler/cpp/poppler-page.h>

#include "util/error.h"

namespace fs = std::filesystem;

namespace kexa::rag {

namespace {

std::string lower_ext(const std::string& path) {
  std::string e = fs::path(path).extension().string();
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

// A record is indexed as "key: value" lines so field names are searchable too.
void flatten(const nlohmann::json& j, const std::string& prefix, std::string& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else if (j.is_array()) {
    for (const auto& v : j) flatten(v, prefix, out);
  } else if (!j.is_null()) {
    if (!prefix.empty()) out += prefix + ": ";
    out += j.is_string() ? j.get<std::string>() : j.dump();
    out += '\n';
  }
}

// RFC 4180 fields of one CSV record starting at `pos`; advances pos past the record's line end.
std::vector<std::string> csv_record(const std::string& s, std::size_t& pos) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  while (pos < s.size()) {
    char c = s[pos];
    if (quoted) {
      if (c == '"') {
        if (pos + 1 < s.size() && s[pos + 1] == '"') { fields.back() += '"'; ++pos; }
        else quoted = false;
      } else {
        fields.back() += c;
      }
      ++pos;
      continue;
    }
    if (c == '"') { quoted = true; ++pos; continue; }
    if (c == ',') { fields.emplace_back(); ++pos; continue; }
    if (c == '\r' || c == '\n') {
      if (c == '\r' && pos + 1 < s.size() && s[pos + 1] == '\n') ++pos;
      ++pos;
      return fields;
    }
    fields.back() += c;
    ++pos;
  }
  return fields;
}

void text_chunks(const std::string& text, const char* unit, std::int64_t page, const ChunkOptions& opt,
                 std::vector<ChunkRecord>& out) {
  for (const ChunkSpan& c : chunk_text(text, opt)) {
    ChunkRecord r;
    r.unit = unit;
    r.begin = static_cast<std::int64_t>(c.span.begin);
    r.end = static_cast<std::int64_t>(c.span.end);
    r.page = page;
    r.heading = c.heading;
    r.text = text.substr(c.span.begin, c.span.end - c.span.begin);
    out.push_back(std::move(r));
  }
}

// Collects the visible text of an HTML tree (see html_to_text).
class HtmlText {
 public:
  // drop_chrome: web pages' header, footer, aside, form and ARIA landmark navigation are dropped.
  explicit HtmlText(bool drop_chrome = false) : drop_chrome_(drop_chrome) {}
  std::string take() {
    trim_trailing_spaces();
    while (!out_.empty() && out_.back() == '\n') out_.pop_back();
    return std::move(out_);
  }

  void walk(xmlNode* n, bool pre) {
    for (; n; n = n->next) {
      if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        if (n->content) text(reinterpret_cast<const char*>(n->content), pre);
        continue;
      }
      if (n->type != XML_ELEMENT_NODE || !n->name) continue;
      std::string name(reinterpret_cast<const char*>(n->name));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (skipped(name) || (drop_chrome_ && chrome(n, name))) continue;
      if (name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6') {
        HtmlText inner(drop_chrome_);
        inner.walk(n->children, false);
        std::string title = inner.take();
        std::replace(title.begin(), title.end(), '\n', ' ');
        if (title.empty()) continue;
        blank_line();
        out_.append(static_cast<std::size_t>(name[1] - '0'), '#');
        out_ += ' ';
        out_ += title;
        blank_line();
        continue;
      }
      if (name == "br") { line_break(); continue; }
      bool para = paragraph(name), block = para || line_block(name);
      if (para) blank_line(); else if (block) line_break();
      walk(n->children, pre || name == "pre" || name == "textarea");
      if (para) blank_line(); else if (block) line_break();
      if (name == "td" || name == "th") space_ = true;
    }
  }

 private:
  static bool chrome(xmlNode* e, const std::string& n) {
    static const char* k[] = {"header", "footer", "aside", "form", "button", "dialog"};
    if (std::any_of(std::begin(k), std::end(k), [&](const char* s) { return n == s; })) return true;
    std::unique_ptr<xmlChar, void (*)(void*)> role(xmlGetProp(e, BAD_CAST "role"), xmlFree);
    if (!role) return false;
    std::string r(reinterpret_cast<const char*>(role.get()));
    return r == "navigation" || r == "banner" || r == "contentinfo" || r == "complementary" || r == "search";
  }
  static bool skipped(const std::string& n) {
    static const char* k[] = {"script", "style", "noscript", "template", "head", "svg", "math",
                              "iframe", "object", "embed", "canvas", "select", "nav"};
    return std::any_of(std::begin(k), std::end(k), [&](const char* s) { return n == s; });
  }
  static bool paragraph(const std::string& n) {
    static const char* k[] = {"p", "blockquote", "pre", "table", "ul", "ol", "dl", "figure", "section",
                              "article", "header", "footer", "aside", "main", "form", "fieldset",
                              "details", "address", "hr"};
    return std::any_of(std::begin(k), std::end(k), [&](const char* s) { return n == s; });
  }
  static bool line_block(const std::string& n) {
    static const char* k[] = {"div", "li", "tr", "dt", "dd", "figcaption", "summary", "caption", "legend",
                              "option", "body", "html", "center"};
    return std::any_of(std::begin(k), std::end(k), [&](const char* s) { return n == s; });
  }
  static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

  void trim_trailing_spaces() {
    while (!out_.empty() && out_.back() == ' ') out_.pop_back();
  }
  void line_break() {
    trim_trailing_spaces();
    space_ = false;
    if (!out_.empty() && out_.back() != '\n') out_ += '\n';
  }
  void blank_line() {
    line_break();
    if (!out_.empty() && (out_.size() < 2 || out_[out_.size() - 2] != '\n')) out_ += '\n';
  }
  void text(const char* s, bool pre) {
    for (; *s; ++s) {
      char c = *s;
      if (pre) {
        if (c == '\r') continue;
        out_ += c;
        continue;
      }
      if (ws(c)) { space_ = true; continue; }
      if (space_ && !out_.empty() && out_.back() != '\n') out_ += ' ';
      space_ = false;
      out_ += c;
    }
  }

  std::string out_;
  bool space_ = false;
  bool drop_chrome_ = false;
};

// The first element named `name` in document order (depth first), or null.
xmlNode* find_element(xmlNode* n, const char* name) {
  for (; n; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (n->name && xmlStrcasecmp(n->name, BAD_CAST name) == 0) return n;
    if (xmlNode* f = find_element(n->children, name)) return f;
  }
  return nullptr;
}

bool declares_charset(std::string_view html) {
  std::string head(html.substr(0, 2048));
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return head.find("charset") != std::string::npos || head.rfind("<?xml", 0) == 0;
}

}  // namespace

bool readable_type(const std::string& path) {
  static const char* kExt[] = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".xhtml", ".pdf",
                               ".jsonl", ".ndjson", ".json", ".csv"};
  std::string e = lower_ext(path);
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* k) { return e == k; });
}

std::string html_to_text(std::string_view html) {
  if (html.empty()) return {};
  // libxml2 falls back to Latin-1 for HTML without a declared charset; today's default is UTF-8.
  const char* encoding = declares_charset(html) ? nullptr : "UTF-8";
  std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> doc(
      htmlReadMemory(html.data(), static_cast<int>(html.size()), nullptr, encoding,
                     HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET),
      xmlFreeDoc);
  if (!doc) return {};
  HtmlText t;
  t.walk(xmlDocGetRootElement(doc.get()), false);
  return t.take();
}

std::string html_main_text(std::string_view utf8_html, std::string* title) {
  if (title) title->clear();
  if (utf8_html.empty()) return {};
  std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> doc(
      htmlReadMemory(utf8_html.data(), static_cast<int>(utf8_html.size()), nullptr, "UTF-8",
                     HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                         HTML_PARSE_IGNORE_ENC),
      xmlFreeDoc);
  if (!doc) return {};
  xmlNode* root = xmlDocGetRootElement(doc.get());
  if (title) {
    if (xmlNode* t = find_element(root, "title")) {
      HtmlText tt;
      tt.walk(t->children, false);
      *title = tt.take();
      std::replace(title->begin(), title->end(), '\n', ' ');
    }
  }
  HtmlText t(/*drop_chrome=*/true);
  if (xmlNode* main = find_element(root, "main")) {
    t.walk(main->children, false);
  } else if (xmlNode* article = find_element(root, "article")) {
    for (xmlNode* a = article; a; a = a->next)
      if (a->type == XML_ELEMENT_NODE && xmlStrcasecmp(a->name, BAD_CAST "article") == 0) t.walk(a->children, false);
  } else {
    t.walk(root, false);
  }
  return t.take();
}

namespace {

// Poppler reports problems through one process-wide callback (by default printed to stderr as
// "poppler/error: ..."). It is installed once; each thread collects the messages of the PDF it is
// reading so they end up in our error instead of on the terminal.
thread_local std::vector<std::string>* t_poppler_messages = nullptr;

void collect_poppler_message(const std::string& msg, void*) {
  if (t_poppler_messages && t_poppler_messages->size() < 8) t_poppler_messages->push_back(msg);
}

struct PopplerMessages {
  std::vector<std::string> messages;
  PopplerMessages() {
    static std::once_flag once;
    std::call_once(once, [] { poppler::set_debug_error_function(collect_poppler_message, nullptr); });
    t_poppler_messages = &messages;
  }
  ~PopplerMessages() { t_poppler_messages = nullptr; }
  PopplerMessages(const PopplerMessages&) = delete;
  PopplerMessages& operator=(const PopplerMessages&) = delete;
  // " (Poppler: first; second)" or "".
  std::string detail() const {
    if (messages.empty()) return {};
    std::string out = " (Poppler: ";
    for (std::size_t i = 0; i < messages.size(); ++i) {
      std::string m = messages[i];
      while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
      out += (i ? "; " : "") + m;
    }
    return out + ")";
  }
};

}  // namespace

std::vector<std::string> pdf_pages(const std::string& data, const std::string& origin) {
  PopplerMessages diag;
  std::unique_ptr<poppler::document> doc(
      poppler::document::load_from_raw_data(data.data(), static_cast<int>(data.size())));
  if (!doc) fail("rag ingest: '", origin, "' is not a readable PDF (damaged or not a PDF)", diag.detail());
  if (doc->is_locked()) fail("rag ingest: '", origin, "' is an encrypted PDF (no password support)");
  std::vector<std::string> pages;
  for (int i = 0; i < doc->pages(); ++i) {
    std::unique_ptr<poppler::page> p(doc->create_page(i));
    if (!p) { pages.emplace_back(); continue; }
    poppler::byte_array b = p->text(poppler::rectf(), poppler::page::raw_order_layout).to_utf8();
    std::string s(b.begin(), b.end());
    // Poppler ends a page's text with a form feed; keep offsets inside the visible text.
    while (!s.empty() && (s.back() == '\f' || s.back() == '\n')) s.pop_back();
    pages.push_back(std::move(s));
  }
  return pages;
}

std::vector<ChunkRecord> extract_chunks(const std::string& path, const std::string& data, const ChunkOptions& opt) {
  std::vector<ChunkRecord> chunks;
  std::string ext = lower_ext(path);
  if (ext == ".jsonl" || ext == ".ndjson") {
    std::size_t pos = 0, line_no = 0;
    while (pos < data.size()) {
      std::size_t eol = data.find('\n', pos);
      if (eol == std::string::npos) eol = data.size();
      ++line_no;
      std::string_view line(data.data() + pos, eol - pos);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded()) fail("rag ingest: '", path, "' line ", line_no, " is not valid JSON");
        std::string text;
        flatten(j, "", text);
        std::size_t end = eol;
        if (end > pos && data[end - 1] == '\r') --end;
        if (!text.empty())
          chunks.push_back({"byte", static_cast<std::int64_t>(pos), static_cast<std::int64_t>(end), 0, "", text});
      }
      pos = eol + 1;
    }
  } else if (ext == ".json") {
    nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded()) fail("rag ingest: '", path, "' is not valid JSON");
    if (!j.is_array()) j = nlohmann::json::array({j});
    for (std::size_t i = 0; i < j.size(); ++i) {
      std::string text;
      flatten(j[i], "", text);
      if (!text.empty())
        chunks.push_back({"record", static_cast<std::int64_t>(i), static_cast<std::int64_t>(i + 1), 0, "", text});
    }
  } else if (ext == ".csv") {
    std::size_t pos = 0;
    std::vector<std::string> header = csv_record(data, pos);
    while (pos < data.size()) {
      std::size_t start = pos;
      std::vector<std::string> row = csv_record(data, pos);
      std::string text;
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (row[i].empty()) continue;
        if (i < header.size() && !header[i].empty()) text += header[i] + ": ";
        text += row[i] + "\n";
      }
      std::size_t end = pos;
      while (end > start && (data[end - 1] == '\n' || data[end - 1] == '\r')) --end;
      if (!text.empty())
        chunks.push_back({"byte", static_cast<std::int64_t>(start), static_cast<std::int64_t>(end), 0, "", text});
    }
  } else if (ext == ".html" || ext == ".htm" || ext == ".xhtml") {
    text_chunks(html_to_text(data), "text", 0, opt, chunks);
  } else if (ext == ".pdf") {
    std::vector<std::string> pages = pdf_pages(data, path);
    for (std::size_t i = 0; i < pages.size(); ++i)
      text_chunks(pages[i], "page", static_cast<std::int64_t>(i + 1), opt, chunks);
  } else {
    text_chunks(data, "byte", 0, opt, chunks);
  }
  return chunks;
}

}  // namespace kexa::rag
