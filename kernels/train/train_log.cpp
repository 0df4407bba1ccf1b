#include "kernels/train/train_log.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/text.hpp"
#include "common/xml.hpp"

namespace gfdit::train {
namespace {

constexpr const char* header = "step,loss,grad_norm,lr,seconds,images_per_s,workers";

std::string format_row(const log_row& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%lld,%.17g,%.17g,%.9g,%.6f,%.3f,%d", static_cast<long long>(r.step), r.loss,
                r.grad_norm, r.lr, r.seconds, r.images_per_s, r.workers);
  return buf;
}

// A step of 1, 2 or 5 times a power of ten giving about `n` ticks over [lo, hi].
double tick_step(double lo, double hi, int n) {
  const double raw = (hi - lo) / n;
  if (!(raw > 0)) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string progress_text(const log_row& r, std::int64_t steps) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "step %lld/%lld  loss %.5f  grad norm %.4f  lr %.3g  %.3f s  %.1f images/s  %d worker%s",
                static_cast<long long>(r.step), static_cast<long long>(steps), r.loss, r.grad_norm, r.lr, r.seconds,
                r.images_per_s, r.workers, r.workers == 1 ? "" : "s");
  return buf;
}

result<void> append_log(const std::filesystem::path& file, const log_row& row) {
  std::error_code ec;
  const bool fresh = !std::filesystem::exists(file, ec) || std::filesystem::file_size(file, ec) == 0;
  std::ofstream f(file, std::ios::app);
  if (fresh) f << header << '\n';
  f << format_row(row) << '\n';
  if (!f) return make_error(errc::io, "train: cannot append to " + file.string());
  return {};
}

result<std::vector<log_row>> read_log(const std::filesystem::path& file) {
  std::vector<log_row> rows;
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return rows;
  auto text = read_text(file, 1u << 30);
  if (!text) return text.err();
  std::istringstream in(*text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (n == 1 && line == header) continue;
    if (line.empty()) continue;
    log_row r;
    long long step = 0;
    int used = 0;
    if (std::sscanf(line.c_str(), "%lld,%lf,%lf,%lf,%lf,%lf,%d%n", &step, &r.loss, &r.grad_norm, &r.lr, &r.seconds,
                    &r.images_per_s, &r.workers, &used) != 7 ||
        static_cast<std::size_t>(used) != line.size())
      return make_error(errc::invalid_argument, file.string() + ":" + std::to_string(n) + ": not a row of " + header);
    r.step = step;
    rows.push_back(r);
  }
  return rows;
}

result<void> keep_log_until(const std::filesystem::path& file, std::int64_t step) {
  auto rows = read_log(file);
  if (!rows) return rows.err();
  if (rows->empty()) return {};
  std::string text = std::string(header) + "\n";
  for (const auto& r : *rows)
    if (r.step <= step) text += format_row(r) + "\n";
  return write_text_atomically(file, text);
}

std::string loss_svg(const std::vector<log_row>& rows, const std::string& title) {
  const double W = 720, H = 400, left = 64, right = 16, top = 36, bottom = 44;
  const double pw = W - left - right, ph = H - top - bottom;
  std::string s =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" + num(H) +
      "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(left) + "\" y=\"22\" font-size=\"14\">" + xml_escape(title) + "</text>\n";
  std::vector<const log_row*> pts;
  for (const auto& r : rows)
    if (std::isfinite(r.loss)) pts.push_back(&r);
  if (pts.empty()) return s + "<text x=\"" + num(left) + "\" y=\"" + num(top + 20) + "\">no steps yet</text>\n</svg>\n";
  double x0 = static_cast<double>(pts.front()->step), x1 = x0, y1 = 0;
  for (const auto* p : pts) {
    x0 = std::min(x0, static_cast<double>(p->step));
    x1 = std::max(x1, static_cast<double>(p->step));
    y1 = std::max(y1, p->loss);
  }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= 0) y1 = 1;
  const double ys = tick_step(0, y1, 5), xs = tick_step(x0, x1, 6);
  y1 = std::ceil(y1 / ys) * ys;
  auto X = [&](double v) { return left + (v - x0) / (x1 - x0) * pw; };
  auto Y = [&](double v) { return top + ph - v / y1 * ph; };
  for (double v = 0; v <= y1 + ys / 2; v += ys)
    s += "<line x1=\"" + num(left) + "\" x2=\"" + num(left + pw) + "\" y1=\"" + num(Y(v)) + "\" y2=\"" + num(Y(v)) +
         "\" stroke=\"#e4e4e4\"/><text x=\"" + num(left - 6) + "\" y=\"" + num(Y(v) + 4) + "\" text-anchor=\"end\">" +
         num(v) + "</text>\n";
  for (double v = std::ceil(x0 / xs) * xs; v <= x1 + xs / 2 && v <= x1; v += xs)
    s +=
        "<text x=\"" + num(X(v)) + "\" y=\"" + num(top + ph + 18) + "\" text-anchor=\"middle\">" + num(v) + "</text>\n";
  s += "<text x=\"" + num(left + pw / 2) + "\" y=\"" + num(H - 8) + "\" text-anchor=\"middle\">step</text>\n";
  s += "<text transform=\"translate(14," + num(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">loss</text>\n";
  s += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
       "\" fill=\"none\" stroke=\"#888\"/>\n";
  // Each step's loss (one batch: noisy), then its moving average over about 2% of the run.
  const double alpha = 1.0 / std::max(1.0, static_cast<double>(pts.size()) / 50.0);
  std::string raw, avg;
  double mean = pts.front()->loss;
  for (const auto* p : pts) {
    mean += alpha * (p->loss - mean);
    raw += num(X(static_cast<double>(p->step))) + "," + num(Y(p->loss)) + " ";
    avg += num(X(static_cast<double>(p->step))) + "," + num(Y(mean)) + " ";
  }
  s += "<polyline fill=\"none\" stroke=\"#9ecae1\" stroke-width=\"1\" points=\"" + raw + "\"/>\n";
  s += "<polyline class=\"average\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\" points=\"" + avg + "\"/>\n";
  s += "<text x=\"" + num(left + pw - 4) + "\" y=\"" + num(top + 14) + "\" text-anchor=\"end\">last " +
       num(pts.back()->loss) + ", average " + num(mean) + " at step " + std::to_string(pts.back()->step) + "</text>\n";
  return s + "</svg>\n";
}

result<void> draw_loss(const std::filesystem::path& out, int batch) {
  auto rows = read_log(log_path(out));
  if (!rows) return rows.err();
  return write_text_atomically(out / "loss.svg", loss_svg(*rows, "loss: " + out.filename().string() +
                                                                     " (global batch " + std::to_string(batch) + ")"));
}

}  // namespace gfdit::train
