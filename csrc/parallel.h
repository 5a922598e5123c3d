// Static split of a row range over std::threads. The split never changes a
// result: every kernel computes each row from (inputs, seed, row index) only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace svae {

inline int hardware_threads() {
  const unsigned h = std::thread::hardware_concurrency();
  return h == 0 ? 1 : static_cast<int>(h);
}

// Runs fn(begin, end) over [0, n) in at most `num_threads` contiguous parts,
// none smaller than `min_rows` (so small calls stay on the calling thread).
template <class Fn>
void parallel_rows(int64_t n, int num_threads, int64_t min_rows, Fn&& fn) {
  if (n <= 0) return;
  if (num_threads <= 0) num_threads = hardware_threads();
  min_rows = std::max<int64_t>(min_rows, 1);
  const int64_t max_parts = std::max<int64_t>(1, n / min_rows);
  const int parts = static_cast<int>(std::min<int64_t>(num_threads, max_parts));
  if (parts <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(parts - 1);
  const int64_t base = n / parts, extra = n % parts;
  int64_t begin = 0;
  int64_t first_end = 0;
  for (int p = 0; p < parts; ++p) {
    const int64_t end = begin + base + (p < extra ? 1 : 0);
    if (p == 0) {
      first_end = end;
    } else {
      pool.emplace_back([&fn, begin, end] { fn(begin, end); });
    }
    begin = end;
  }
  fn(int64_t{0}, first_end);
  for (auto& t : pool) t.join();
}

}  // namespace svae
