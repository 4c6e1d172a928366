// A one-line progress bar on stderr, drawn only when stderr is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace wick::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  // Redraws at most ten times a second; `note` is shown after the counts.
  void update(int64_t done, const std::string& note = "");
  // Draws the final state and ends the line.
  void finish(const std::string& note = "");

 private:
  void draw(int64_t done, const std::string& note);
  std::string label_;
  int64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace wick::cli
