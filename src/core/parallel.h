// A small fixed thread pool for CPU kernels: parallel_for splits a range into one chunk per thread.
#pragma once

#include <cstdint>
#include <functional>

namespace wick {

// Threads used by CPU kernels: WICK_NUM_THREADS if set, else the number of hardware threads.
int cpu_threads();

// Calls body(begin, end) over disjoint chunks covering [0, n). Runs inline when n <= grain, when there is one
// thread, or when called from inside another parallel_for. The first exception thrown by a chunk is rethrown.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace wick
