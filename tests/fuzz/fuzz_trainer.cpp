// Trains a tiny BPE / SuperBPE vocabulary on the input itself, then checks that the trainer's
// tokenizer.json loads into the engine's tokenizer, which covers the text exactly: the concatenated token bytes equal the normalised input.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/trainer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 4096) return 0;
  const std::string special = "<s>";
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string path = "/tmp/kexa_fuzz_trainer_" + std::to_string(getpid()) + ".txt";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;

  kexa::bpe::TrainOptions opt;
  opt.corpus = {path};
  opt.vocab_size = 256 + 1 + 40;
  opt.superword = data[0] & 1;
  opt.nfc = data[0] & 2;
  opt.min_frequency = 1;
  opt.threads = 1 + (data[0] >> 7);
  opt.specials = {special};
  opt.block_bytes = 64 + (data[0] >> 2 & 31) * 16;
  kexa::bpe::TrainedBpe bpe;
  try {
    bpe = kexa::bpe::train(opt);
  } catch (const kexa::Error&) {
    return 0;  // e.g. the input was only the special token: an empty corpus
  }
  std::unique_ptr<kexa::Tokenizer> tok;
  try {
    tok = kexa::Tokenizer::from_json(kexa::bpe::tokenizer_json(bpe));
  } catch (const kexa::Error&) {
    return 0;  // the special token's text was also learned as a token
  }
  const auto nfc = [](const std::string& s) { return kexa::tok::normalize(s, kexa::tok::NormForm::NFC); };
  const std::string clean = kexa::sanitize_utf8(text);
  std::string expected;
  size_t pos = 0, hit;
  while ((hit = clean.find(special, pos)) != std::string::npos) {
    std::string part = clean.substr(pos, hit - pos);
    expected += (bpe.nfc ? nfc(part) : part) + special;
    pos = hit + special.size();
  }
  std::string tail = clean.substr(pos);
  expected += bpe.nfc ? nfc(tail) : tail;
  std::string got;
  for (int32_t id : tok->encode(clean, false, true)) got += tok->token_piece(id);
  if (got != expected) std::abort();
  return 0;
}
