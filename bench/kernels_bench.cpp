// Kernel throughput: memory read bandwidth (the decode roofline), matrix-vector GB/s and
// matrix-matrix GFLOP/s per weight dtype and instruction-set path, and thread-pool fork/join cost.
//   build-x/kexa_bench_kernels --benchmark_filter=Bandwidth   (the probe bench/compare-llamacpp
//   uses)
// Shapes are EXAONE-4.0-1.2B's: hidden 2048, MLP 4096, vocabulary 102400.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "formats/tensor.h"
#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "kernels/quant_matmul.h"
#include "util/thread_pool.h"

namespace {

using kexa::DType;
using kexa::ThreadPool;
using kexa::kernels::CpuPath;

// Memory is touched once up front so page faults stay out of the timings.
std::vector<uint8_t> random_bytes(size_t n, DType dtype) {
  std::vector<uint8_t> out(n);
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  for (size_t i = 0; i + 4 <= n; i += 4) {
    float v = dist(rng);
    if (dtype == DType::F32) {
      std::memcpy(&out[i], &v, 4);
    } else {
      // Two 16-bit values whose top bits look like small normal numbers in f16 and bf16.
      uint32_t b;
      std::memcpy(&b, &v, 4);
      uint16_t h =
          static_cast<uint16_t>(dtype == DType::BF16 ? (b >> 16) : (0x2000 | (b & 0x13ff)));
      std::memcpy(&out[i], &h, 2);
      std::memcpy(&out[i + 2], &h, 2);
    }
  }
  return out;
}

// Reads `bytes` with `threads` threads; sums keep the loads alive. The widest loads the CPU has
// (64 bytes with AVX-512, 32 with AVX2, else 16), several independent accumulators, and each line
// also requested 4 KiB ahead: hardware prefetchers stop at page boundaries, and on Intel server
// cores a plain sequential read reaches only about half of what the weight kernels (which
// prefetch the same way) read per second, which would put them above the "roofline".
// Four 64-byte lines per step, each into its own accumulators of vector type V; always inlined
// into the per-instruction-set wrappers below, so V's loads use that instruction set.
template <typename V>
__attribute__((always_inline)) inline uint64_t read_lines(const uint8_t* p, size_t n) {
  constexpr size_t kPerLine = 64 / sizeof(V);
  V acc[4][kPerLine] = {};
  for (size_t off = 0; off + 256 <= n; off += 256)
    for (size_t j = 0; j < 4; ++j) {
      __builtin_prefetch(p + off + 64 * j + 4096);
      const V* v = reinterpret_cast<const V*>(p + off + 64 * j);
      for (size_t k = 0; k < kPerLine; ++k) acc[j][k] += v[k];
    }
  uint64_t total = 0;
  for (size_t j = 0; j < 4; ++j)
    for (size_t k = 0; k < kPerLine; ++k)
      for (size_t e = 0; e < sizeof(V) / 8; ++e) total += acc[j][k][e];
  return total;
}

typedef uint64_t v2u64 __attribute__((vector_size(16)));
uint64_t read_range_sse(const uint8_t* p, size_t n) { return read_lines<v2u64>(p, n); }
#if defined(__x86_64__)
typedef uint64_t v4u64 __attribute__((vector_size(32)));
typedef uint64_t v8u64 __attribute__((vector_size(64)));
__attribute__((target("avx2"))) uint64_t read_range_avx2(const uint8_t* p, size_t n) {
  return read_lines<v4u64>(p, n);
}
__attribute__((target("avx512f"))) uint64_t read_range_avx512(const uint8_t* p, size_t n) {
  return read_lines<v8u64>(p, n);
}
#endif

uint64_t read_range(const uint8_t* p, size_t n) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return read_range_avx512(p, n);
  if (__builtin_cpu_supports("avx2")) return read_range_avx2(p, n);
#endif
  return read_range_sse(p, n);
}

void BM_Bandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t bytes = size_t{1} << 30;  // far beyond any cache
  static std::vector<uint8_t> buffer = random_bytes(bytes, DType::BF16);
  ThreadPool pool(threads);
  std::vector<uint64_t> sums(threads * 8);
  for (auto _ : state) {
    pool.run([&](int index, int n) {
      size_t begin = bytes / n * index, end = bytes / n * (index + 1);
      sums[index * 8] += read_range(buffer.data() + begin, end - begin);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Bandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

struct Shape {
  int64_t rows, cols;
};

void run_matmul(benchmark::State& state, DType dtype, CpuPath path, Shape shape, int64_t tokens,
                int threads, bool packed = false) {
  if (!kexa::kernels::path_supported(path)) {
    state.SkipWithError("CPU lacks this path");
    return;
  }
  const size_t wbytes = kexa::dtype_bytes(dtype, shape.rows * shape.cols);
  std::vector<uint8_t> w;
  if (kexa::kernels::is_quantized(dtype)) {
    // Real blocks (finite scales), quantized from random floats one row at a time.
    w.resize(wbytes);
    std::vector<uint8_t> f = random_bytes(static_cast<size_t>(shape.cols) * 4, DType::F32);
    const size_t row_bytes = kexa::dtype_bytes(dtype, shape.cols);
    kexa::kernels::quantize(dtype, reinterpret_cast<const float*>(f.data()), shape.cols, w.data());
    for (int64_t r = 1; r < shape.rows; ++r)
      std::memcpy(w.data() + row_bytes * r, w.data(), row_bytes);
  } else {
    w = random_bytes(wbytes, dtype);
  }
  kexa::kernels::Weight view(kexa::TensorView{"bench.weight", dtype, {shape.rows, shape.cols}, w.data(), w.size()});
  if (packed) {
    if (!kexa::kernels::packable(view) || !kexa::kernels::packed_path(path)) {
      state.SkipWithError("no packed kernels for this type or CPU");
      return;
    }
    kexa::kernels::pack_rows(dtype, shape.rows, shape.cols, w.data());
    view.row_group = kexa::kernels::kPackRows;
  }
  std::vector<float> x(static_cast<size_t>(tokens * shape.cols), 0.5f);
  std::vector<float> y(static_cast<size_t>(tokens * shape.rows));
  ThreadPool pool(threads);
  for (auto _ : state) {
    kexa::kernels::matmul(view, x.data(), tokens, y.data(), pool, path);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wbytes));
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(shape.rows * shape.cols * tokens) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kexa::dtype_name(dtype) + " " + kexa::kernels::path_name(path) + (packed ? " packed" : ""));
}

void register_all() {
  const std::pair<const char*, CpuPath> paths[] = {
      {"portable", CpuPath::Portable}, {"avx2", CpuPath::Avx2}, {"avx512", CpuPath::Avx512}};
  const std::pair<const char*, DType> dtypes[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}};
  const std::pair<const char*, Shape> shapes[] = {
      {"4096x2048", {4096, 2048}}, {"2048x4096", {2048, 4096}}, {"102400x2048", {102400, 2048}}};
  for (auto [pname, path] : paths)
    for (auto [dname, dtype] : dtypes) {
      for (auto [sname, shape] : shapes)
        for (int threads : {1, 2}) {
          if (path == CpuPath::Portable && shape.rows > 4096) continue;
          std::string name = std::string("Matvec/") + dname + "/" + pname + "/" + sname +
                             "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(
              name.c_str(),
              [dtype = dtype, path = path, shape = shape, threads](benchmark::State& s) {
                run_matmul(s, dtype, path, shape, 1, threads);
              })
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
        }
      if (path == CpuPath::Portable) continue;
      // 8 tokens: a server step with 8 streams (on the output projection: weights stream from
      // DRAM); 64 and 512: prefill. With AMX, BF16 runs on tiles here (KEXA_AMX=0 compares).
      const std::tuple<const char*, Shape, int64_t> cases[] = {{"4096x2048", {4096, 2048}, 8},
                                                               {"4096x2048", {4096, 2048}, 64},
                                                               {"4096x2048", {4096, 2048}, 512},
                                                               {"102400x2048", {102400, 2048}, 8}};
      // (One thread as well: its CPU time measures the kernel on a machine shared with other jobs.)
      for (auto [sname, shape, tokens] : cases)
        for (int threads : {1, 2}) {
          std::string name = std::string("Matmul/") + dname + "/" + pname + "/" + sname +
                             "/tokens:" + std::to_string(tokens) + "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(),
                                       [dtype = dtype, path = path, shape = shape, tokens = tokens,
                                        threads](benchmark::State& s) {
                                         run_matmul(s, dtype, path, shape, tokens, threads);
                                       })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
    }
  // Quantized types (the GGUF mixes' formats): decode shapes and one prefill shape.
  const std::pair<const char*, DType> qtypes[] = {{"Q8_0", DType::Q8_0}, {"Q4_0", DType::Q4_0},
                                                  {"Q4_K", DType::Q4_K}, {"Q5_K", DType::Q5_K},
                                                  {"Q6_K", DType::Q6_K}};
  const std::tuple<const char*, CpuPath, bool> qpaths[] = {
      {"avx2", CpuPath::Avx2, false}, {"avx2-packed", CpuPath::Avx2, true}, {"avx512", CpuPath::Avx512, false},
      {"avx512-packed", CpuPath::Avx512, true}};
  for (auto [pname, path, packed] : qpaths) {
    for (auto [dname, dtype] : qtypes) {
      // 256x2048 stays in L2: compute throughput without DRAM or shared-cache effects;
      // 102400x2048 (the output projection) is far beyond the 32 MiB L3: streaming from DRAM.
      const std::pair<const char*, Shape> qshapes[] = {
          {"4096x2048", {4096, 2048}}, {"2048x4096", {2048, 4096}}, {"256x2048", {256, 2048}},
          {"512x2048", {512, 2048}}, {"102400x2048", {102400, 2048}}};
      for (auto [sname, shape] : qshapes)
        for (int threads : {1, 2}) {
          std::string name = std::string("Matvec/") + dname + "/" + pname + "/" + sname +
                             "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(
              name.c_str(),
              [dtype = dtype, path = path, shape = shape, threads, packed = packed](benchmark::State& s) {
                run_matmul(s, dtype, path, shape, 1, threads, packed);
              })
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
        }
      // 2 and 8 tokens: server steps with 2 and 8 streams; 512: prefill.
      for (int64_t tokens : {2, 8, 512})
        for (int threads : {1, 2}) {
          std::string name = std::string("Matmul/") + dname + "/" + pname + "/4096x2048/tokens:" +
                             std::to_string(tokens) + "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(),
                                       [dtype = dtype, path = path, tokens, threads, packed = packed](benchmark::State& s) {
                                         run_matmul(s, dtype, path, {4096, 2048}, tokens, threads, packed);
                                       })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
      // 8 tokens on 256 rows (L2-resident weights): the tile's compute alone, to set against the
      // 4096-row product (L3) and the output projection (DRAM).
      {
        const std::string name = std::string("Matmul/") + dname + "/" + pname + "/256x2048/tokens:8/threads:1";
        benchmark::RegisterBenchmark(name.c_str(), [dtype = dtype, path = path, packed = packed](benchmark::State& s) {
          run_matmul(s, dtype, path, {256, 2048}, 8, 1, packed);
        })->Unit(benchmark::kMicrosecond)->UseRealTime();
      }
      // 8 tokens on the output projection: weights stream from DRAM while the tile computes.
      for (int threads : {1, 2}) {
        std::string name = std::string("Matmul/") + dname + "/" + pname + "/102400x2048/tokens:8/threads:" +
                           std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(),
                                     [dtype = dtype, path = path, threads, packed = packed](benchmark::State& s) {
                                       run_matmul(s, dtype, path, {102400, 2048}, 8, threads, packed);
                                     })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
}

void BM_ForkJoin(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  std::vector<int64_t> sink(64);
  for (auto _ : state) {
    pool.run([&](int index, int) { sink[index * 8] += 1; });
  }
  benchmark::DoNotOptimize(sink.data());
}
BENCHMARK(BM_ForkJoin)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
