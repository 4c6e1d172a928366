#include "core/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace wick {
namespace {

thread_local bool inside_parallel_region = false;

class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  void submit(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }

 private:
  void work() {
    inside_parallel_region = true;
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (stopping_ && tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> tasks_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

ThreadPool& pool() {
  static ThreadPool instance(cpu_threads() - 1);
  return instance;
}

}  // namespace

int cpu_threads() {
  static const int threads = [] {
    if (const char* env = std::getenv("WICK_NUM_THREADS")) {
      const int n = std::atoi(env);
      if (n > 0) return n;
    }
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return threads;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  const int64_t max_chunks =
      std::min<int64_t>(cpu_threads(), (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
  if (max_chunks <= 1 || inside_parallel_region) {
    body(0, n);
    return;
  }
  const int64_t chunk = (n + max_chunks - 1) / max_chunks;
  std::mutex mutex;
  std::condition_variable done;
  int64_t pending = 0;
  std::exception_ptr error;
  auto run_chunk = [&](int64_t begin, int64_t end) {
    try {
      body(begin, end);
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!error) error = std::current_exception();
    }
  };
  for (int64_t begin = chunk; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    {
      std::lock_guard lock(mutex);
      ++pending;
    }
    pool().submit([&, begin, end] {
      run_chunk(begin, end);
      std::lock_guard lock(mutex);
      if (--pending == 0) done.notify_one();
    });
  }
  inside_parallel_region = true;
  run_chunk(0, std::min(n, chunk));
  inside_parallel_region = false;
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return pending == 0; });
  if (error) std::rethrow_exception(error);
}

}  // namespace wick
