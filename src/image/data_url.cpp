#include "image/data_url.h"

#include <optional>

#include "util/base64.h"
#include "util/error.h"

namespace kexa::image {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Format declared_format(const std::string& t) {
  if (t == "image/png" || t == "image/apng") return Format::Png;
  if (t == "image/jpeg" || t == "image/jpg" || t == "image/pjpeg") return Format::Jpeg;
  if (t == "image/webp") return Format::WebP;
  if (t == "image/gif") return Format::Gif;
  if (t == "image/bmp" || t == "image/x-bmp" || t == "image/x-ms-bmp") return Format::Bmp;
  return Format::Unknown;
}

}  // namespace

DataUrl parse_data_url(std::string_view url, std::size_t max_bytes) {
  if (lower(url.substr(0, 5)) != "data:") fail("not a data: URL");
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) fail("the data: URL has no ',' before its data");
  std::string_view header = url.substr(5, comma - 5), payload = url.substr(comma + 1);
  DataUrl out;
  bool base64 = false;
  size_t pos = 0;
  for (bool first = true; pos <= header.size(); first = false) {
    size_t semi = header.find(';', pos);
    if (semi == std::string_view::npos) semi = header.size();
    const std::string part = lower(trim(header.substr(pos, semi - pos)));
    if (first) out.media_type = part;
    else if (part == "base64") base64 = true;
    pos = semi + 1;
  }
  if (!base64) fail("the data: URL is not base64 (';base64,' expected before the data)");
  // Four characters carry three bytes: refuse before decoding what cannot fit.
  if (payload.size() / 4 * 3 > max_bytes + 3)
    fail("the image is about ", payload.size() / 4 * 3, " bytes, more than the limit of ", max_bytes, " bytes");
  std::optional<std::string> bytes = decode_base64(payload);
  if (!bytes) fail("the data: URL's data is not base64");
  if (bytes->size() > max_bytes)
    fail("the image is ", bytes->size(), " bytes, more than the limit of ", max_bytes, " bytes");
  out.bytes = std::move(*bytes);
  return out;
}

void check_declared_type(std::string_view media_type, Format actual) {
  const std::string t = lower(trim(media_type));
  if (t.empty() || t == "image/*" || t == "application/octet-stream" || actual == Format::Unknown) return;
  const Format declared = declared_format(t);
  if (declared == Format::Unknown) {
    if (t.rfind("image/", 0) == 0)
      fail("the declared type ", t, " is not a supported image format (PNG, JPEG, WebP, GIF, BMP)");
    fail("the declared type ", t, " is not an image type");
  }
  if (declared != actual)
    fail("the image is declared as ", t, " but its bytes are a ", format_name(actual), " image");
}

}  // namespace kexa::image
