#include "util/thread_pool.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kexa {

namespace {

// A forward pass calls run() hundreds of times per token with only microseconds between calls,
// so workers spin for a short while before sleeping: a futex wake-up costs several microseconds
// while a spinning worker picks up a new job in well under one. The spin is bounded in time so
// idle pools do not burn a CPU that other processes could use.
constexpr auto kSpinTime = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  // Spurious returns (EINTR, EAGAIN when the value already changed) are handled by the callers'
  // loops, which re-check the word.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
}

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));

// Waits until `word` differs from `old`: spins first, then sleeps on the futex. `sleepers` counts
// threads that may be inside futex_wait so that wakers can skip the system call when nobody sleeps.
uint32_t wait_for_change(std::atomic<uint32_t>& word, uint32_t old, std::atomic<uint32_t>& sleepers,
                         bool spin) {
  uint32_t now = word.load(std::memory_order_acquire);
  if (now != old) return now;
  auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 0; spin; ++i) {
    cpu_relax();
    now = word.load(std::memory_order_acquire);
    if (now != old) return now;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) break;
  }
  for (;;) {
    // seq_cst on both sides (here and in the waker) guarantees that either this thread sees the
    // new value or the waker sees sleepers > 0 and issues the wake.
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    now = word.load(std::memory_order_seq_cst);
    if (now == old) futex_wait(&word, old);
    sleepers.fetch_sub(1, std::memory_order_seq_cst);
    now = word.load(std::memory_order_acquire);
    if (now != old) return now;
  }
}

void publish(std::atomic<uint32_t>& word, uint32_t value, std::atomic<uint32_t>& sleepers) {
  word.store(value, std::memory_order_seq_cst);
  if (sleepers.load(std::memory_order_seq_cst) != 0) futex_wake_all(&word);
}

}  // namespace

struct ThreadPool::State {
  // Written by the caller before it publishes `next_index`; read by whoever claims an index.
  const std::function<void(int, int)>* job = nullptr;
  bool stop = false;
  int n_threads = 1;
  // With more threads than CPUs a spinning thread takes the CPU from the thread being waited
  // for, so oversubscribed pools go straight to the futex.
  bool spin = true;

  // Separate cache lines: workers poll `generation` while the caller polls `pending`.
  alignas(64) std::atomic<uint32_t> generation{0};
  std::atomic<uint32_t> worker_sleepers{0};
  // Thread indices 1..n-1 of the current job are claimed from this counter by whichever thread
  // gets there first. A worker that the OS has not scheduled yet therefore never delays the
  // caller: once done with index 0 the caller claims and runs the remaining indices itself.
  alignas(64) std::atomic<int> next_index{0};
  alignas(64) std::atomic<uint32_t> pending{0};  // claimed or unclaimed indices not yet finished
  std::atomic<uint32_t> caller_sleepers{0};

  std::mutex error_mutex;
  std::exception_ptr error;

  std::vector<std::thread> threads;

  void run_index(int index) {
    try {
      (*job)(index, n_threads);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        caller_sleepers.load(std::memory_order_seq_cst) != 0)
      futex_wake_all(&pending);
  }

  // Runs every still unclaimed index of the current job.
  void claim_and_run() {
    for (;;) {
      int index = next_index.fetch_add(1, std::memory_order_acq_rel);
      if (index >= n_threads) return;
      run_index(index);
    }
  }
};

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (n_threads <= 0) n_threads = 1;
  n_threads_ = n_threads;
  state_ = new State();
  State* s = state_;
  s->n_threads = n_threads;
  s->next_index.store(n_threads);
  s->spin = n_threads <= static_cast<int>(std::thread::hardware_concurrency());
  s->threads.reserve(n_threads - 1);
  for (int index = 1; index < n_threads; ++index) {
    s->threads.emplace_back([s] {
      uint32_t seen = 0;
      for (;;) {
        seen = wait_for_change(s->generation, seen, s->worker_sleepers, s->spin);
        if (s->stop) return;
        s->claim_and_run();
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  State* s = state_;
  s->stop = true;
  publish(s->generation, s->generation.load(std::memory_order_relaxed) + 1, s->worker_sleepers);
  for (auto& t : s->threads) t.join();
  delete s;
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  State* s = state_;
  s->job = &fn;
  s->pending.store(static_cast<uint32_t>(n_threads_ - 1), std::memory_order_relaxed);
  s->next_index.store(1, std::memory_order_release);
  publish(s->generation, s->generation.load(std::memory_order_relaxed) + 1, s->worker_sleepers);

  std::exception_ptr caller_error;
  try {
    fn(0, n_threads_);
  } catch (...) {
    caller_error = std::current_exception();
  }
  s->claim_and_run();
  for (uint32_t left = s->pending.load(std::memory_order_acquire); left != 0;
       left = s->pending.load(std::memory_order_acquire))
    wait_for_change(s->pending, left, s->caller_sleepers, s->spin);

  if (caller_error) std::rethrow_exception(caller_error);
  if (s->error) {
    std::exception_ptr e;
    std::swap(e, s->error);
    std::rethrow_exception(e);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    fn(0, n);
    return;
  }
  run([&](int index, int count) {
    int64_t begin = n * index / count;
    int64_t end = n * (index + 1) / count;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace kexa
