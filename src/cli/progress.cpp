#include "cli/progress.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>

namespace wick::cli {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t done, const std::string& note) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done, note);
}

void ProgressBar::finish(const std::string& note) {
  draw(total_, note);
  if (enabled_) fmt::print(stderr, "\n");
}

void ProgressBar::draw(int64_t done, const std::string& note) {
  if (!enabled_) return;
  constexpr int kWidth = 30;
  const double fraction = std::clamp(static_cast<double>(done) / static_cast<double>(total_), 0.0, 1.0);
  const int filled = static_cast<int>(fraction * kWidth);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
  fmt::print(stderr, "\r{} [{}{}] {}/{} {:.0f}s elapsed, {:.0f}s left {}", label_, std::string(filled, '#'),
             std::string(kWidth - filled, '.'), done, total_, elapsed, eta, note);
  std::fflush(stderr);
}

}  // namespace wick::cli
