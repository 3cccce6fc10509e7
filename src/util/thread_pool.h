// A fixed set of worker threads that run one parallel loop at a time with little synchronisation.
#pragma once

#include <cstdint>
#include <functional>

namespace kexa {

class ThreadPool {
 public:
  // n_threads includes the calling thread; 0 means the number of online CPUs.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index, n_threads) once for every index (the caller runs index 0) and returns
  // when all have finished. Indices never run concurrently with themselves, but an index whose
  // worker has not woken up yet is run by the caller once it is done with its own, so a
  // descheduled worker cannot stall the call. Not reentrant.
  void run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into contiguous ranges, one per thread: fn(begin, end).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct State;
  int n_threads_ = 1;
  State* state_ = nullptr;
};

}  // namespace kexa
