#include "server/images.h"

#include <cctype>
#include <string>
#include <string_view>

#include "image/data_url.h"
#include "image/image.h"
#include "server/server.h"
#include "util/error.h"
#include "web/address.h"
#include "web/fetch.h"

namespace kexa::server {

namespace {

// Whether `url` starts with `prefix` (lower case), in any case.
bool has_scheme(const std::string& url, std::string_view prefix) {
  if (url.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(url[i])) != prefix[i]) return false;
  return true;
}

bool is_http(const std::string& url) { return has_scheme(url, "http://") || has_scheme(url, "https://"); }

image::Limits limits_of(const ServerOptions& o) {
  image::Limits l;
  l.max_bytes = o.max_image_bytes;
  l.max_pixels = o.max_image_pixels;
  return l;
}

// The decoded picture of `bytes` whose declared type is `declared`.
RgbImage decode_part(const std::string& bytes, const std::string& declared, const image::Limits& limits,
                     const ImagePart& part) {
  try {
    image::check_declared_type(declared, image::detect_format(bytes));
    return image::decode(bytes, limits);
  } catch (const Error& e) {
    throw BadRequest{concat(part.param, ": ", e.what()), part.param};
  }
}

}  // namespace

std::vector<RgbImage> load_images(const ServerOptions& options, const std::vector<ImagePart>& parts) {
  std::vector<RgbImage> images;
  if (parts.empty()) return images;
  if (parts.size() > static_cast<size_t>(options.max_images)) {
    throw BadRequest{concat("the request has ", parts.size(), " images; this server takes at most ", options.max_images,
                            " per request (--max-images)"),
                     parts[static_cast<size_t>(options.max_images)].param};
  }
  const image::Limits limits = limits_of(options);
  // Fetches first, all at once, under one deadline.
  std::vector<std::string> urls;
  for (const ImagePart& p : parts) {
    if (is_http(p.url)) {
      if (!options.image_fetch) {
        throw BadRequest{concat(p.param, ": this server does not fetch images from URLs (its operator can turn that "
                                         "on with --image-fetch); send the picture as a data: URL"),
                         p.param};
      }
      urls.push_back(p.url);
    } else if (!has_scheme(p.url, "data:")) {
      throw BadRequest{concat(p.param, ": not a data: URL or an http(s) URL"), p.param};
    }
  }
  std::vector<web::Page> pages;
  if (!urls.empty()) {
    web::AddressPolicy policy;
    try {
      for (const std::string& entry : options.web_allow) policy.allow(entry);
    } catch (const Error& e) {
      throw BadRequest{concat("--web-allow: ", e.what()), "", 500, "server_error"};
    }
    web::FetchOptions fo;
    fo.raw_body = true;
    fo.robots = false;
    fo.max_page_bytes = options.max_image_bytes;
    fo.page_timeout_ms = options.image_fetch_timeout_ms;
    fo.deadline_ms = options.image_fetch_timeout_ms;
    fo.user_agent = "kexa-image/1.0 (fetches a picture a chat request names)";
    web::Fetcher fetcher(policy, fo);
    pages = fetcher.fetch(urls);
  }
  size_t fetched = 0;
  for (const ImagePart& p : parts) {
    if (is_http(p.url)) {
      const web::Page& page = pages[fetched++];
      if (!page.ok()) throw BadRequest{concat(p.param, ": fetching ", p.url, " failed: ", page.error), p.param};
      if (!page.content_type.empty() && page.content_type.rfind("image/", 0) != 0 &&
          page.content_type != "application/octet-stream") {
        throw BadRequest{concat(p.param, ": ", p.url, " is ", page.content_type, ", not an image"), p.param};
      }
      images.push_back(decode_part(page.body, page.content_type, limits, p));
      continue;
    }
    image::DataUrl data;
    try {
      data = image::parse_data_url(p.url, options.max_image_bytes);
    } catch (const Error& e) {
      throw BadRequest{concat(p.param, ": ", e.what()), p.param};
    }
    images.push_back(decode_part(data.bytes, data.media_type, limits, p));
  }
  return images;
}

}  // namespace kexa::server
