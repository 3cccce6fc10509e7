// Turning one source file into retrievable chunks, by file type. Every chunk says where its text
// came from so a citation can point back at the evidence:
//   unit "byte"   [begin, end) are byte offsets into the source file (.txt .md, a .csv row, a
//                 .jsonl line);
//   unit "record" [index, index + 1) of a record of a .json array;
//   unit "text"   byte offsets into the document's extracted text (html_to_text of an .html file);
//   unit "page"   byte offsets into the extracted text of PDF page `page` (1-based; a chunk never
//                 crosses a page).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rag/analyze.h"

namespace kexa::rag {

struct ChunkRecord {
  std::string unit;
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t page = 0;  // PDF page (1-based); 0 for other types
  std::string heading;
  std::string text;
};

// True for the extensions the store reads: .txt .text .md .markdown .html .htm .xhtml .pdf .json
// .jsonl .ndjson .csv (case-insensitive).
bool readable_type(const std::string& path);

// Chunks of one file whose bytes are `data`, chosen by the extension of `path`. Throws kexa::Error
// naming the file (and the line or record) when the content is not what the extension says.
std::vector<ChunkRecord> extract_chunks(const std::string& path, const std::string& data,
                                        const ChunkOptions& opt);

// Visible text of an HTML document: script/style/template/head content dropped, block elements
// on their own lines, h1..h6 as Markdown heading lines ("## Title") so chunk_text starts a section
// there, white space collapsed outside <pre>. The charset comes from the document (UTF-8 default).
std::string html_to_text(std::string_view html);

// The main content of a web page, as html_to_text writes it: the first <main> element, else the
// <article> siblings of the first one, else the whole document; inside it, page chrome (header,
// footer, aside, form, button, dialog, role=navigation/banner/contentinfo/complementary/search)
// is dropped as well. `utf8_html` must already be UTF-8 (a declared charset is ignored). `title`
// (optional) receives the text of <title>.
std::string html_main_text(std::string_view utf8_html, std::string* title = nullptr);

// UTF-8 text of every page of a PDF (Poppler), in page order. Throws kexa::Error naming `origin`
// when the data is not a readable PDF (damaged, encrypted).
std::vector<std::string> pdf_pages(const std::string& data, const std::string& origin);

}  // namespace kexa::rag
