// Run-time choice of the instruction set, argument checks, threading of the matmul, and the small
// kernels that do not need a per-instruction-set version.
#include "kernels/kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/amx.h"
#include "kernels/float_kernels.h"
#include "kernels/packed.h"
#include "kernels/quant_matmul.h"
#include "util/error.h"
#include "util/thread_pool.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
// The bits of the kernel's arm64 hwcap ABI, in case the C library's headers predate them.
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#endif

namespace kexa::kernels {

namespace {

#if defined(__x86_64__)
// F16C straight from CPUID (leaf 1, ECX bit 29): clang 14's __builtin_cpu_supports lacks "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ecx & (1u << 29)) != 0;
}
#endif

CpuPath detect_best_path() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    cpu_has_f16c();
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq");
  if (avx512) return CpuPath::Avx512;
  if (avx2) return CpuPath::Avx2;
#elif defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  if ((hw & HWCAP_ASIMD) == 0) return CpuPath::Portable;
  if ((hw & HWCAP_ASIMDDP) == 0) return CpuPath::Neon;
  if ((hw2 & HWCAP2_I8MM) == 0) return CpuPath::NeonDotprod;
  return CpuPath::NeonI8mm;
#elif defined(__aarch64__)
  return CpuPath::Neon;  // Advanced SIMD is part of every aarch64 CPU
#endif
  return CpuPath::Portable;
}

bool is_arm_path(CpuPath p) {
  return p == CpuPath::Neon || p == CpuPath::NeonDotprod || p == CpuPath::NeonI8mm;
}

CpuPath parse_requested_path(const char* variable, const char* value) {
  std::string v = value;
  if (v == "portable") return CpuPath::Portable;
  if (v == "avx2") return CpuPath::Avx2;
  if (v == "avx512") return CpuPath::Avx512;
  if (v == "neon") return CpuPath::Neon;
  if (v == "dotprod") return CpuPath::NeonDotprod;
  if (v == "i8mm") return CpuPath::NeonI8mm;
  fail("environment variable ", variable, "=", v,
       " is not one of portable, avx2, avx512 (x86-64), neon, dotprod, i8mm (aarch64)");
}

CpuPath compute_active_path() {
  CpuPath best = best_path();
  // KEXA_ISA is the documented name; KEXA_CPU (its first name) is still read when KEXA_ISA is unset.
  const char* variable = "KEXA_ISA";
  const char* env = std::getenv(variable);
  if (env == nullptr || *env == '\0') {
    variable = "KEXA_CPU";
    env = std::getenv(variable);
  }
  if (env == nullptr || *env == '\0') return best;
  CpuPath requested = parse_requested_path(variable, env);
  // The variable can only lower the path: a CPU cannot run instructions it lacks.
  return path_supported(requested) ? requested : best;
}

const detail::FloatKernelSet& kernel_set(CpuPath path) {
  if (!path_supported(path))
    fail("CPU path ", path_name(path),
         " is not supported by this CPU (best: ", path_name(best_path()), ")");
  switch (path) {
    case CpuPath::Avx512:
      return detail::avx512_kernels();
    case CpuPath::Avx2:
      return detail::avx2_kernels();
    case CpuPath::Neon:
    case CpuPath::NeonDotprod:
      return detail::neon_kernels(false);
    case CpuPath::NeonI8mm:
      return detail::neon_kernels(arm_bf16_supported());
    case CpuPath::Portable:
      break;
  }
  return detail::portable_kernels();
}

void check_matmul_args(const Weight& W, const float* x, int64_t n_tokens, const float* y) {
  if (W.shape.size() != 2)
    fail("matmul: weight ", W.name, " must be 2-D, got shape ", W.shape_string());
  if (W.rows() <= 0 || W.cols() <= 0)
    fail("matmul: weight ", W.name, " has an empty shape ", W.shape_string());
  if (n_tokens < 0) fail("matmul: negative token count ", n_tokens, " for ", W.name);
  size_t need = dtype_bytes(W.dtype, W.numel());
  if (W.data == nullptr || W.nbytes < need)
    fail("matmul: weight ", W.name, " ", W.shape_string(), " ", dtype_name(W.dtype), " needs ",
         need, " bytes, view has ", W.nbytes);
  if (n_tokens > 0 && (x == nullptr || y == nullptr))
    fail("matmul: null activation or output buffer for ", W.name);
}

}  // namespace

CpuPath best_path() {
  static const CpuPath best = detect_best_path();
  return best;
}

CpuPath active_path() {
  static const CpuPath active = compute_active_path();
  return active;
}

std::span<const CpuPath> all_paths() {
  static constexpr CpuPath kAll[] = {CpuPath::Portable, CpuPath::Avx2,        CpuPath::Avx512,
                                     CpuPath::Neon,     CpuPath::NeonDotprod, CpuPath::NeonI8mm};
  return kAll;
}

bool path_supported(CpuPath path) {
  if (path == CpuPath::Portable) return true;
  const CpuPath best = best_path();
  // Within an architecture the enumerators run lowest path first.
  return is_arm_path(path) == is_arm_path(best) && best != CpuPath::Portable &&
         static_cast<int>(path) <= static_cast<int>(best);
}

bool arm_bf16_supported() {
#if defined(__aarch64__) && defined(__linux__)
  static const bool yes = best_path() == CpuPath::NeonI8mm && (getauxval(AT_HWCAP2) & HWCAP2_BF16) != 0;
  return yes;
#else
  return false;
#endif
}

bool avx512_bf16_supported() {
#if defined(__x86_64__)
  static const bool yes = best_path() == CpuPath::Avx512 && __builtin_cpu_supports("avx512bf16");
  return yes;
#else
  return false;
#endif
}

std::string path_name(CpuPath path) {
  switch (path) {
    case CpuPath::Portable:
      return "portable";
    case CpuPath::Avx2:
      return "avx2";
    case CpuPath::Avx512:
      return std::string(avx512_bf16_supported() ? "avx512+bf16" : "avx512") +
             (amx::available() ? "+amx" : "");
    case CpuPath::Neon:
      return "neon";
    case CpuPath::NeonDotprod:
      return "dotprod";
    case CpuPath::NeonI8mm:
      return arm_bf16_supported() ? "i8mm+bf16" : "i8mm";
  }
  return "unknown";
}

namespace {

// KEXA_PROFILE=1: time every matmul and print, at exit, the time and weight bytes per dtype and
// kind (decode = one token, prefill = several) on stderr, to see how much of a forward pass is
// weight streaming and at what rate.
struct MatmulProfile {
  struct Entry {
    std::atomic<int64_t> calls{0}, ns{0}, bytes{0};
  };
  bool enabled = false;
  Entry entries[32][2];
  MatmulProfile() {
    const char* v = std::getenv("KEXA_PROFILE");
    enabled = v != nullptr && *v != '\0' && std::string(v) != "0";
  }
  ~MatmulProfile() {
    if (!enabled) return;
    for (int d = 0; d < 32; ++d)
      for (int k = 0; k < 2; ++k) {
        const Entry& e = entries[d][k];
        if (e.calls == 0) continue;
        const DTypeInfo* info = dtype_info(static_cast<DType>(d));
        std::fprintf(stderr, "kexa profile: matmul %-5s %-7s calls %8lld  %9.3f ms  %8.2f GB/s\n",
                     info != nullptr ? info->name : "?", k == 0 ? "decode" : "prefill",
                     static_cast<long long>(e.calls.load()), static_cast<double>(e.ns.load()) * 1e-6,
                     e.ns > 0 ? static_cast<double>(e.bytes.load()) / static_cast<double>(e.ns.load()) : 0.0);
      }
  }
};

MatmulProfile& matmul_profile() {
  static MatmulProfile profile;
  return profile;
}

}  // namespace

// Runs fn, timing it when KEXA_PROFILE is set; the bytes are those of the weights it reads.
template <typename Fn>
void profiled(DType dtype, int64_t n_tokens, size_t bytes, Fn&& fn) {
  MatmulProfile& prof = matmul_profile();
  if (!prof.enabled) {
    fn();
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  const int d = static_cast<int>(dtype);
  if (d >= 0 && d < 32) {
    MatmulProfile::Entry& e = prof.entries[d][n_tokens > 1 ? 1 : 0];
    e.calls += 1;
    e.ns += ns;
    e.bytes += static_cast<int64_t>(bytes);
  }
}

void matmul(const Weight& W, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  profiled(W.dtype, n_tokens, dtype_bytes(W.dtype, W.numel()),
           [&] { matmul(W, x, n_tokens, y, pool, active_path()); });
}

namespace {

// Rows per scheduling unit of a one-token product: at most ~256 KiB of weights (amortises the
// shared counter) and at least 4 chunks per thread (balances small matrices), whole panels.
int64_t decode_chunk_rows(const Weight& W, int threads) {
  const int64_t rows = W.rows();
  const int64_t row_bytes = static_cast<int64_t>(dtype_bytes(W.dtype, W.cols()));
  int64_t chunk = std::max<int64_t>(1, (256 * 1024) / row_bytes);
  chunk = std::min(chunk, (rows + 4 * threads - 1) / (4 * threads));
  return std::max<int64_t>(1, (chunk + detail::kPanelRows - 1) / detail::kPanelRows) * detail::kPanelRows;
}

// One matrix of a one-token matmul_many call, ready to compute any row range.
struct DecodeTask {
  const Weight* w = nullptr;
  float* y = nullptr;
  int64_t rows = 0, chunk = 0, first_chunk = 0;
  const uint8_t* act = nullptr;  // quantized weights: the activation blocks
  detail::RowRangeFn fn = nullptr;  // float weights
  detail::MatmulArgs args{};
};

// Per calling thread, reused across calls so that decode does not allocate.
struct DecodeScratch {
  QuantizedInput quantized;
  std::vector<uint16_t> x_bf16;
  std::vector<float> x_rounded;
  std::vector<DecodeTask> tasks;
};

void decode_many(std::span<const MatmulOut> outs, const float* x, ThreadPool& pool, CpuPath path) {
  thread_local DecodeScratch scratch;
  DecodeScratch& s = scratch;
  const int64_t cols = outs[0].w->cols();
  s.quantized.prepare(x, cols);
  s.tasks.clear();
  bool have_bf16 = false;
  int64_t n_chunks = 0, work = 0;
  for (const MatmulOut& o : outs) {
    const Weight& W = *o.w;
    DecodeTask t;
    t.w = &W;
    t.y = o.y;
    if (W.dtype == DType::F32 || W.dtype == DType::F16 || W.dtype == DType::BF16) {
      check_matmul_args(W, x, 1, o.y);
    } else {
      check_quantized(W);  // throws for types no kernel handles
      if (o.y == nullptr || x == nullptr) fail("matmul: null activation or output buffer for ", W.name);
    }
    if (W.cols() != cols)
      fail("matmul: weight ", W.name, " ", W.shape_string(), " does not take the ", cols,
           " input columns of the other weights in the same call");
    t.rows = W.rows();
    t.chunk = decode_chunk_rows(W, pool.size());
    t.first_chunk = n_chunks;
    n_chunks += (t.rows + t.chunk - 1) / t.chunk;
    work += t.rows * cols;
    if (is_quantized(W.dtype)) {
      t.act = s.quantized.blocks(W.dtype);
    } else {
      const detail::FloatKernelSet& ks = kernel_set(path);
      const void* xp = x;
      switch (W.dtype) {
        case DType::F32:
          t.fn = ks.f32;
          break;
        case DType::F16:
          t.fn = ks.f16;
          break;
        default:
          // BF16 weights multiply activations rounded to bf16, as llama.cpp does.
          t.fn = ks.bf16;
          if (!have_bf16) {
            if (ks.bf16_takes_bf16_x) {
              s.x_bf16.resize(static_cast<size_t>(cols));
              ks.to_bf16(x, cols, s.x_bf16.data());
            } else {
              s.x_rounded.resize(static_cast<size_t>(cols));
              ks.round_bf16(x, cols, s.x_rounded.data());
            }
            have_bf16 = true;
          }
          xp = ks.bf16_takes_bf16_x ? static_cast<const void*>(s.x_bf16.data())
                                    : static_cast<const void*>(s.x_rounded.data());
          break;
      }
      t.args = detail::MatmulArgs{W.data, t.rows, cols, xp, 1, o.y};
    }
    s.tasks.push_back(t);
  }
  const std::vector<DecodeTask>& tasks = s.tasks;
  auto run_chunk = [&](int64_t c) {
    size_t i = 0;
    while (i + 1 < tasks.size() && tasks[i + 1].first_chunk <= c) ++i;
    const DecodeTask& t = tasks[i];
    const int64_t r0 = (c - t.first_chunk) * t.chunk, r1 = std::min(t.rows, r0 + t.chunk);
    if (t.act != nullptr)
      quantized_rows(*t.w, t.act, t.y, r0, r1, path);
    else
      t.fn(t.args, r0, r1, nullptr);
  };
  if (pool.size() == 1 || n_chunks == 1 || work < 64 * 1024) {
    for (int64_t c = 0; c < n_chunks; ++c) run_chunk(c);
    return;
  }
  // Chunks are claimed from a shared counter, so a thread slowed by another process does not
  // hold everyone up at the join.
  std::atomic<int64_t> next{0};
  pool.run([&](int, int) {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) break;
      run_chunk(c);
    }
  });
}

}  // namespace

void matmul_many(std::span<const MatmulOut> outs, const float* x, int64_t n_tokens, ThreadPool& pool) {
  if (outs.empty() || outs[0].w == nullptr || !matmul_profile().enabled) {
    matmul_many(outs, x, n_tokens, pool, active_path());
    return;
  }
  size_t bytes = 0;
  for (const MatmulOut& o : outs) bytes += o.w != nullptr ? dtype_bytes(o.w->dtype, o.w->numel()) : 0;
  profiled(outs[0].w->dtype, n_tokens, bytes, [&] { matmul_many(outs, x, n_tokens, pool, active_path()); });
}

void matmul_many(std::span<const MatmulOut> outs, const float* x, int64_t n_tokens, ThreadPool& pool,
                 CpuPath path) {
  if (outs.empty()) return;
  for (const MatmulOut& o : outs)
    if (o.w == nullptr) fail("matmul: null weight in a multi-matrix call");
  if (n_tokens != 1) {
    // Packed products share one quantization of the activations and one join (a batched decode
    // step's q, k, v or gate, up are small each); the others run one by one.
    if (std::all_of(outs.begin(), outs.end(), [&](const MatmulOut& o) { return runs_packed(*o.w, path); })) {
      matmul_packed_many(outs, x, n_tokens, pool, path);
      return;
    }
    for (const MatmulOut& o : outs) matmul(*o.w, x, n_tokens, o.y, pool, path);
    return;
  }
  if (!path_supported(path))
    fail("CPU path ", path_name(path), " is not supported by this CPU (best: ", path_name(best_path()), ")");
  decode_many(outs, x, pool, path);
}

namespace {

// BF16 weights times several tokens on AMX tiles: activations rounded to bf16 as on every path,
// packed once into tile order, then row chunks shared out.
void matmul_bf16_amx(const Weight& W, const float* x, int64_t n_tokens, float* y,
                     ThreadPool& pool, const detail::FloatKernelSet& ks) {
  const int64_t rows = W.rows(), cols = W.cols();
  std::vector<uint16_t> x_bf16(static_cast<size_t>(n_tokens * cols));
  ks.to_bf16(x, n_tokens * cols, x_bf16.data());
  std::vector<uint16_t> packed(amx::bf16_packed_elems(n_tokens, cols));
  amx::bf16_pack_activations(x_bf16.data(), n_tokens, cols, packed.data());
  // Chunks of about 256 KiB of weights (64 rows at 2048 columns), whole 32-row tile pairs: a
  // chunk's weights stay in L2 while all token tiles pass over them.
  const int64_t chunk_rows = std::max<int64_t>(32, (256 * 1024) / (cols * 2) / 32 * 32);
  const int64_t n_chunks = (rows + chunk_rows - 1) / chunk_rows;
  std::atomic<int64_t> next{0};
  auto work = [&](int, int) {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) break;
      amx::bf16_rows(W.data, cols, packed.data(), n_tokens, c * chunk_rows,
                     std::min(rows, (c + 1) * chunk_rows), y, rows);
    }
  };
  if (pool.size() == 1 || n_chunks == 1) work(0, 1);
  else pool.run(work);
}

}  // namespace

void matmul(const Weight& W, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            CpuPath path) {
  if (n_tokens == 1) {
    const MatmulOut out{&W, y};
    matmul_many(std::span<const MatmulOut>(&out, 1), x, 1, pool, path);
    return;
  }
  if (W.dtype != DType::F32 && W.dtype != DType::F16 && W.dtype != DType::BF16) {
    matmul_quantized(W, x, n_tokens, y, pool, path);
    return;
  }
  check_matmul_args(W, x, n_tokens, y);
  if (n_tokens == 0) return;
  const detail::FloatKernelSet& ks = kernel_set(path);
  const int64_t rows = W.rows(), cols = W.cols();
  if (W.dtype == DType::BF16 && path == CpuPath::Avx512 && rows % 16 == 0 &&
      cols % amx::kBf16Step == 0 && amx::available()) {
    matmul_bf16_amx(W, x, n_tokens, y, pool, ks);
    return;
  }

  detail::RowRangeFn fn = nullptr;
  std::vector<uint16_t> x_bf16;
  std::vector<float> x_rounded;
  const void* xp = x;
  switch (W.dtype) {
    case DType::F32:
      fn = ks.f32;
      break;
    case DType::F16:
      fn = ks.f16;
      break;
    default:
      // BF16 weights multiply activations rounded to bf16, as llama.cpp does; with the rounding
      // done on every path, paths differ only in summation order.
      fn = ks.bf16;
      if (ks.bf16_takes_bf16_x) {
        x_bf16.resize(static_cast<size_t>(n_tokens * cols));
        ks.to_bf16(x, n_tokens * cols, x_bf16.data());
        xp = x_bf16.data();
      } else {
        x_rounded.resize(static_cast<size_t>(n_tokens * cols));
        ks.round_bf16(x, n_tokens * cols, x_rounded.data());
        xp = x_rounded.data();
      }
      break;
  }
  const detail::MatmulArgs args{W.data, rows, cols, xp, n_tokens, y};

  // Work is handed out in chunks of whole panels from a shared counter, so a thread slowed by
  // another process does not hold everyone up at the join. Decode chunks are sized by bytes
  // (large enough to amortise the counter, small enough to balance); prefill chunks by panels so
  // each chunk's widened weights stay in L2 while every token passes over them.
  const int64_t row_bytes = static_cast<int64_t>(dtype_bytes(W.dtype, cols));
  int64_t chunk_rows;
  if (n_tokens == 1) {
    chunk_rows = std::max<int64_t>(1, (256 * 1024) / row_bytes);
  } else {
    const int64_t compute_bytes = W.dtype == DType::BF16 && ks.bf16_takes_bf16_x ? 2 : 4;
    chunk_rows = std::max<int64_t>(1, (256 * 1024) / (cols * compute_bytes));
  }
  chunk_rows = (chunk_rows + detail::kPanelRows - 1) / detail::kPanelRows * detail::kPanelRows;
  const int64_t n_chunks = (rows + chunk_rows - 1) / chunk_rows;
  const bool needs_scratch = n_tokens > 1 && W.dtype != DType::F32;

  const int64_t flops = rows * cols * n_tokens;
  if (pool.size() == 1 || n_chunks == 1 || flops < 64 * 1024) {
    std::vector<float> scratch(needs_scratch ? static_cast<size_t>(chunk_rows * cols) : 0);
    for (int64_t c = 0; c < n_chunks; ++c)
      fn(args, c * chunk_rows, std::min(rows, (c + 1) * chunk_rows),
         needs_scratch ? scratch.data() : nullptr);
    return;
  }
  std::atomic<int64_t> next{0};
  pool.run([&](int, int) {
    std::vector<float> scratch(needs_scratch ? static_cast<size_t>(chunk_rows * cols) : 0);
    for (;;) {
      int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) break;
      fn(args, c * chunk_rows, std::min(rows, (c + 1) * chunk_rows),
         needs_scratch ? scratch.data() : nullptr);
    }
  });
}

void to_f32(const Weight& t, int64_t offset, int64_t n, float* out) {
  const DTypeInfo* info = dtype_info(t.dtype);
  if (info == nullptr) fail("to_f32: tensor ", t.name, " has an unknown dtype");
  if (offset < 0 || n < 0 || offset + n > t.numel())
    fail("to_f32: range [", offset, ", ", offset + n, ") is outside tensor ", t.name, " ",
         t.shape_string(), " of ", t.numel(), " elements");
  if (offset % info->block_size != 0 || n % info->block_size != 0)
    fail("to_f32: range [", offset, ", ", offset + n, ") of tensor ", t.name, " is not aligned to ",
         info->name, " blocks of ", info->block_size);
  const size_t begin = dtype_bytes(t.dtype, offset);
  if (t.data == nullptr || begin + dtype_bytes(t.dtype, n) > t.nbytes)
    fail("to_f32: tensor ", t.name, " data is shorter than its shape ", t.shape_string());
  if (t.row_group != 1) {
    // Packed rows (an embedding tied to a packed output matrix): back to the file's layout row
    // by row.
    const int64_t cols = t.cols();
    std::vector<uint8_t> row(dtype_bytes(t.dtype, cols));
    std::vector<float> values(static_cast<size_t>(cols));
    for (int64_t done = 0; done < n;) {
      const int64_t r = (offset + done) / cols, c0 = (offset + done) % cols;
      const int64_t take = std::min(n - done, cols - c0);
      unpack_row(t, r, row.data());
      dequantize(t.dtype, row.data(), cols, values.data());
      std::memcpy(out + done, values.data() + c0, static_cast<size_t>(take) * sizeof(float));
      done += take;
    }
    return;
  }
  const uint8_t* src = t.data + begin;
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16:
      kernel_set(active_path()).f16_to_f32(reinterpret_cast<const uint16_t*>(src), n, out);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = detail::bf16_to_f32(h);
      }
      return;
    default:
      dequantize(t.dtype, src, n, out);
  }
}

void rmsnorm(const float* x, const float* w, int64_t n, double eps, float* out) {
  kernel_set(active_path()).rmsnorm(x, w, n, eps, out);
}

void rope_neox(float* head, int64_t head_dim, const float* inv_freq, int64_t position) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    // The angle is formed in f32 like the reference implementations; cos/sin of that angle are
    // then exact to f32 rounding.
    const float angle = static_cast<float>(position) * inv_freq[i];
    const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
    const float s = static_cast<float>(std::sin(static_cast<double>(angle)));
    const float a = head[i], b = head[i + half];
    head[i] = a * c - b * s;
    head[i + half] = b * c + a * s;
  }
}

void rope_cos_sin(const float* inv_freq, int64_t half, int64_t position, float* cos_out,
                  float* sin_out) {
  for (int64_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(position) * inv_freq[i];
    cos_out[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
    sin_out[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
}

void rope_neox_cs(float* head, int64_t head_dim, const float* cos_v, const float* sin_v) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = head[i], b = head[i + half];
    head[i] = a * cos_v[i] - b * sin_v[i];
    head[i + half] = b * cos_v[i] + a * sin_v[i];
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  kernel_set(active_path()).swiglu(gate, up, n, out);
}

void softmax(float* x, int64_t n) { kernel_set(active_path()).softmax(x, n); }

double exp_sum(const float* x, int64_t n, double shift, double scale, double* out) {
  return kernel_set(active_path()).exp_sum(x, n, shift, scale, out);
}

void f16_array_to_f32(const uint16_t* in, int64_t n, float* out) { kernel_set(active_path()).f16_to_f32(in, n, out); }

void f32_array_to_f16(const float* in, int64_t n, uint16_t* out) { kernel_set(active_path()).f32_to_f16(in, n, out); }

void dot_rows(const float* q, int64_t n_q, int64_t q_stride, const float* rows, int64_t stride,
              int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride) {
  kernel_set(active_path()).dot_rows(q, n_q, q_stride, rows, stride, n, dim, scale, scores, scores_stride);
}

void accumulate_rows(const float* p, int64_t n_q, int64_t p_stride, const float* rows, int64_t stride,
                     int64_t n, int64_t dim, float* out, int64_t out_stride) {
  kernel_set(active_path()).accumulate_rows(p, n_q, p_stride, rows, stride, n, dim, out, out_stride);
}

namespace {

// Calls fn(first row, count, widened rows) over blocks of the n half rows, each block widened by
// the path's f16_to_f32 into a per-thread buffer (rows `dim` floats apart). Both attention forms
// treat rows independently (scores) or in order (sums), so blocks change no result.
template <class Fn>
void over_widened_blocks(const detail::FloatKernelSet& ks, const uint16_t* rows, int64_t stride, int64_t n,
                         int64_t dim, Fn&& fn) {
  constexpr int64_t kBlockRows = 32;
  thread_local std::vector<float> wide;
  if (wide.size() < static_cast<size_t>(kBlockRows * dim)) wide.resize(static_cast<size_t>(kBlockRows * dim));
  for (int64_t j0 = 0; j0 < n; j0 += kBlockRows) {
    const int64_t cnt = std::min(kBlockRows, n - j0);
    if (stride == dim) {  // contiguous rows (the KV cache's): one conversion for the block
      ks.f16_to_f32(rows + j0 * stride, cnt * dim, wide.data());
    } else {
      for (int64_t j = 0; j < cnt; ++j) ks.f16_to_f32(rows + (j0 + j) * stride, dim, wide.data() + j * dim);
    }
    fn(j0, cnt, wide.data());
  }
}

}  // namespace

void dot_rows_f16(const float* q, int64_t n_q, int64_t q_stride, const uint16_t* rows, int64_t stride,
                  int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride) {
  const detail::FloatKernelSet& ks = kernel_set(active_path());
  if (ks.dot_rows_f16 != nullptr)
    return ks.dot_rows_f16(q, n_q, q_stride, rows, stride, n, dim, scale, scores, scores_stride);
  over_widened_blocks(ks, rows, stride, n, dim, [&](int64_t j0, int64_t cnt, const float* wide) {
    ks.dot_rows(q, n_q, q_stride, wide, dim, cnt, dim, scale, scores + j0, scores_stride);
  });
}

void accumulate_rows_f16(const float* p, int64_t n_q, int64_t p_stride, const uint16_t* rows, int64_t stride,
                         int64_t n, int64_t dim, float* out, int64_t out_stride) {
  const detail::FloatKernelSet& ks = kernel_set(active_path());
  if (ks.accumulate_rows_f16 != nullptr)
    return ks.accumulate_rows_f16(p, n_q, p_stride, rows, stride, n, dim, out, out_stride);
  over_widened_blocks(ks, rows, stride, n, dim, [&](int64_t j0, int64_t cnt, const float* wide) {
    ks.accumulate_rows(p + j0, n_q, p_stride, wide, dim, cnt, dim, out, out_stride);
  });
}

}  // namespace kexa::kernels
