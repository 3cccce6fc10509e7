// WebP through libwebp: still pictures with the advanced decoding API (into our buffer), the
// first frame of an animation with WebPAnimDecoder (libwebpdemux), the EXIF chunk with WebPDemux.
#include <webp/decode.h>
#include <webp/demux.h>

#include <memory>
#include <vector>

#include "image/decoders.h"
#include "util/error.h"

namespace kexa::image::detail {

namespace {

const char* status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt data (bitstream error)";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated (not enough data)";
  }
  return "unknown error";
}

WebPBitstreamFeatures features(std::string_view b) {
  WebPBitstreamFeatures f;
  const VP8StatusCode s = WebPGetFeatures(reinterpret_cast<const uint8_t*>(b.data()), b.size(), &f);
  if (s != VP8_STATUS_OK) fail("WebP: ", status_text(s));
  return f;
}

std::string exif_chunk(std::string_view b) {
  WebPData data{reinterpret_cast<const uint8_t*>(b.data()), b.size()};
  std::unique_ptr<WebPDemuxer, void (*)(WebPDemuxer*)> demux(WebPDemux(&data), WebPDemuxDelete);
  if (!demux) return "";
  WebPChunkIterator it;
  std::string out;
  if (WebPDemuxGetChunk(demux.get(), "EXIF", 1, &it)) {
    std::string chunk(reinterpret_cast<const char*>(it.chunk.bytes), it.chunk.size);
    // The specification stores the TIFF structure alone; some writers keep JPEG's "Exif\0\0".
    out = chunk.rfind(std::string("Exif\0\0", 6), 0) == 0 ? chunk : std::string("Exif\0\0", 6) + chunk;
    WebPDemuxReleaseChunkIterator(&it);
  }
  return out;
}

RgbImage first_frame(std::string_view b) {
  WebPData data{reinterpret_cast<const uint8_t*>(b.data()), b.size()};
  WebPAnimDecoderOptions opt;
  if (!WebPAnimDecoderOptionsInit(&opt)) fail("WebP: the animation decoder is unavailable");
  opt.color_mode = MODE_RGBA;
  opt.use_threads = 0;
  std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder*)> dec(WebPAnimDecoderNew(&data, &opt),
                                                                   WebPAnimDecoderDelete);
  if (!dec) fail("WebP: corrupt animation");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.get(), &info)) fail("WebP: corrupt animation");
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp) || rgba == nullptr)
    fail("WebP: the first frame of the animation does not decode");
  return from_rgba(info.canvas_width, info.canvas_height, rgba);
}

}  // namespace

Info webp_info(std::string_view bytes) {
  const WebPBitstreamFeatures f = features(bytes);
  return {Format::WebP, static_cast<uint32_t>(f.width), static_cast<uint32_t>(f.height)};
}

Decoded webp_decode(std::string_view bytes, const Limits& limits) {
  const WebPBitstreamFeatures f = features(bytes);
  check_size(Format::WebP, static_cast<uint64_t>(f.width), static_cast<uint64_t>(f.height), limits);
  Decoded d;
  d.exif = exif_chunk(bytes);
  if (f.has_animation) {
    d.image = first_frame(bytes);
    return d;
  }
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) fail("WebP: the decoder is unavailable");
  RgbImage& img = d.image;
  img.width = static_cast<uint32_t>(f.width);
  img.height = static_cast<uint32_t>(f.height);
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  config.output.colorspace = MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = img.rgb.data();
  config.output.u.RGBA.stride = static_cast<int>(img.width * 3);
  config.output.u.RGBA.size = img.rgb.size();
  const VP8StatusCode s = WebPDecode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &config);
  WebPFreeDecBuffer(&config.output);
  if (s != VP8_STATUS_OK) fail("WebP: ", status_text(s));
  return d;
}

}  // namespace kexa::image::detail
