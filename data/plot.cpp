// The loss-curve chart (see plot.h).

#include "data/plot.h"

#include <stb/stb_easy_font.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "data/image_io.h"
#include "tensor/error.h"

namespace diffkd::data {

namespace {

constexpr int64_t kWidth = 720, kHeight = 420, kLeft = 70, kRight = 20, kTop = 40, kBottom = 50;

struct Canvas {
  Image image;
  Canvas() {
    image.width = kWidth;
    image.height = kHeight;
    image.channels = 3;
    image.pixels.assign(kWidth * kHeight * 3, 255);
  }
  void dot(int64_t x, int64_t y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= kWidth || y >= kHeight) return;
    std::copy(rgb, rgb + 3, image.pixels.begin() + (y * kWidth + x) * 3);
  }
  void line(double x0, double y0, double x1, double y1, const uint8_t rgb[3]) {
    const int64_t n = static_cast<int64_t>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
    for (int64_t i = 0; i <= n; ++i) {
      const double f = static_cast<double>(i) / n;
      dot(std::lround(x0 + f * (x1 - x0)), std::lround(y0 + f * (y1 - y0)), rgb);
    }
  }
  // stb_easy_font emits quads (4 vertices of x, y, z, colour); each is an axis-aligned box.
  void text(double x, double y, const std::string& s) {
    static char buffer[60000];
    std::vector<char> copy(s.begin(), s.end());
    copy.push_back('\0');
    const int quads = stb_easy_font_print(static_cast<float>(x), static_cast<float>(y), copy.data(),
                                          nullptr, buffer, sizeof buffer);
    const uint8_t black[3] = {0, 0, 0};
    for (int q = 0; q < quads; ++q) {
      const float* v = reinterpret_cast<const float*>(buffer + q * 64);
      for (int64_t py = std::lround(v[1]); py < std::lround(v[9]); ++py)
        for (int64_t px = std::lround(v[0]); px < std::lround(v[4]); ++px) dot(px, py, black);
    }
  }
};

std::string number(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.3g", v);
  return s;
}

}  // namespace

void write_line_chart(const std::string& path, const std::vector<std::pair<double, double>>& points,
                      const std::string& title, const std::string& x_label) {
  Canvas c;
  const uint8_t grey[3] = {190, 190, 190}, blue[3] = {30, 90, 200}, axis[3] = {0, 0, 0};
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  c.text(kLeft, 12, title);
  c.line(kLeft, kTop, kLeft, kTop + plot_h, axis);
  c.line(kLeft, kTop + plot_h, kLeft + plot_w, kTop + plot_h, axis);
  c.text(kLeft + plot_w / 2 - 20, kHeight - 18, x_label);
  std::vector<std::pair<double, double>> pts;
  for (const auto& p : points)
    if (p.second > 0 && std::isfinite(p.second)) pts.push_back(p);
  if (pts.size() >= 2) {
    double x_min = pts.front().first, x_max = pts.back().first, y_min = pts[0].second, y_max = pts[0].second;
    for (const auto& p : pts) y_min = std::min(y_min, p.second), y_max = std::max(y_max, p.second);
    if (x_max <= x_min) x_max = x_min + 1;
    const double ly_min = std::log10(y_min), ly_max = std::max(std::log10(y_max), ly_min + 1e-3);
    auto px = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * plot_w; };
    auto py = [&](double y) { return kTop + (ly_max - std::log10(y)) / (ly_max - ly_min) * plot_h; };
    for (size_t i = 1; i < pts.size(); ++i)
      c.line(px(pts[i - 1].first), py(pts[i - 1].second), px(pts[i].first), py(pts[i].second), grey);
    // Running mean over a window of 2% of the points.
    const size_t window = std::max<size_t>(1, pts.size() / 50);
    double sum = 0, prev_x = 0, prev_y = 0;
    for (size_t i = 0; i < pts.size(); ++i) {
      sum += pts[i].second;
      if (i >= window) sum -= pts[i - window].second;
      const double mean = sum / std::min(i + 1, window);
      if (i > 0) c.line(prev_x, prev_y, px(pts[i].first), py(mean), blue);
      prev_x = px(pts[i].first), prev_y = py(mean);
    }
    c.text(4, kTop - 4, number(y_max));
    c.text(4, kTop + plot_h - 4, number(y_min));
    c.text(kLeft - 4, kTop + plot_h + 6, number(x_min));
    c.text(kLeft + plot_w - 30, kTop + plot_h + 6, number(x_max));
  }
  write_png(path, c.image);
}

}  // namespace diffkd::data
