#include "cli/loss_plot.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace wick::cli {
namespace {

std::string number(double v) {
  return std::isfinite(v) ? fmt::format("{:.6g}", v) : "";
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string loss_csv(const std::vector<train::StepRecord>& history) {
  std::string csv = "step,epoch,loss,eval_loss,lr,grad_norm,tokens,trained_tokens,seconds,skipped\n";
  for (const auto& r : history)
    csv += fmt::format("{},{},{},{},{},{},{},{},{:.4f},{}\n", r.step, r.epoch, number(r.loss),
                       r.eval_loss ? number(*r.eval_loss) : "", number(r.lr), number(r.grad_norm), r.tokens,
                       r.trained_tokens, r.seconds, r.skipped ? 1 : 0);
  return csv;
}

std::string loss_svg(const std::vector<train::StepRecord>& history, const std::string& title) {
  constexpr double width = 720, height = 420, left = 70, right = 20, top = 40, bottom = 50;
  double max_step = 1, low = INFINITY, high = -INFINITY;
  for (const auto& r : history) {
    max_step = std::max(max_step, static_cast<double>(r.step));
    for (double v : {r.loss, r.eval_loss.value_or(NAN)})
      if (std::isfinite(v)) low = std::min(low, v), high = std::max(high, v);
  }
  if (!std::isfinite(low)) low = 0, high = 1;
  if (high - low < 1e-9) high = low + 1;
  const double pad = 0.05 * (high - low);
  low -= pad;
  high += pad;
  auto x = [&](double step) { return left + (width - left - right) * step / max_step; };
  auto y = [&](double loss) { return top + (height - top - bottom) * (high - loss) / (high - low); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"15\">{3}</text>\n",
      width, height, left, escape(title));
  // Axes with five ticks each.
  svg += fmt::format("<path d=\"M{0} {1} V{2} H{3}\" stroke=\"black\" fill=\"none\"/>\n", left, top,
                     height - bottom, width - right);
  for (int i = 0; i <= 4; ++i) {
    const double loss = low + (high - low) * i / 4, step = max_step * i / 4;
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3g}</text>\n", left - 6,
                       y(loss) + 4, loss);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.0f}</text>\n", x(step),
                       height - bottom + 18, step);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n",
                     (left + width - right) / 2, height - 10);
  svg += fmt::format(
      "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">loss</text>\n",
      (top + height - bottom) / 2, (top + height - bottom) / 2);
  std::string train_path, eval_points;
  for (const auto& r : history) {
    if (std::isfinite(r.loss))
      train_path += fmt::format("{}{:.1f} {:.1f} ", train_path.empty() ? "M" : "L",
                                x(static_cast<double>(r.step)), y(r.loss));
    if (r.eval_loss && std::isfinite(*r.eval_loss))
      eval_points += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"#d62728\"/>\n",
                                 x(static_cast<double>(r.step)), y(*r.eval_loss));
  }
  if (!train_path.empty())
    svg +=
        fmt::format("<path d=\"{}\" stroke=\"#1f77b4\" stroke-width=\"1.5\" fill=\"none\"/>\n", train_path);
  svg += eval_points;
  svg += fmt::format(
      "<path d=\"M{0} {1} h18\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"{2}\" y=\"{3}\">training "
      "loss</text>\n"
      "<circle cx=\"{4}\" cy=\"{5}\" r=\"3.5\" fill=\"#d62728\"/><text x=\"{2}\" y=\"{6}\">validation "
      "loss</text>\n",
      width - 170, top + 6, width - 146, top + 10, width - 161, top + 24, top + 28);
  return svg + "</svg>\n";
}

}  // namespace wick::cli
