#include "detail/bar_chart.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>

#include "stunt/core/error.h"

namespace stunt::bench::detail {
namespace {

constexpr std::array<std::array<uint8_t, 3>, 8> kPalette = {{{31, 119, 180},
                                                             {255, 127, 14},
                                                             {44, 160, 44},
                                                             {214, 39, 40},
                                                             {148, 103, 189},
                                                             {140, 86, 75},
                                                             {227, 119, 194},
                                                             {127, 127, 127}}};

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 255));
}

void chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  std::string body(type, 4);
  body += data;
  out += body;
  put_u32(out, static_cast<uint32_t>(
                   crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}

}  // namespace

std::string series_color(size_t i) {
  const auto& c = kPalette[i % kPalette.size()];
  char text[8];
  std::snprintf(text, sizeof text, "#%02x%02x%02x", c[0], c[1], c[2]);
  return text;
}

std::string bar_chart_png(const BarChart& chart) {
  const int w = chart.width;
  const int h = chart.height;
  STUNT_CHECK(w > 40 && h > 40, "bar chart too small: ", w, "x", h);
  std::vector<uint8_t> pixels(static_cast<size_t>(w) * h * 3, 255);
  auto fill = [&](int x0, int y0, int x1, int y1, std::array<uint8_t, 3> color) {
    for (int y = std::max(0, y0); y < std::min(h, y1); ++y) {
      for (int x = std::max(0, x0); x < std::min(w, x1); ++x) {
        uint8_t* p = &pixels[(static_cast<size_t>(y) * w + x) * 3];
        p[0] = color[0];
        p[1] = color[1];
        p[2] = color[2];
      }
    }
  };
  double largest = 0;
  for (const BarSeries& s : chart.series) {
    for (double v : s.values) largest = std::max(largest, v);
  }
  if (largest <= 0) largest = 1;
  const int left = 10;
  const int right = w - 10;
  const int top = 10;
  const int bottom = h - 10;
  for (int i = 1; i <= 5; ++i) {
    const int y = bottom - (bottom - top) * i / 5;
    fill(left, y, right, y + 1, {225, 225, 225});
  }
  const size_t groups = std::max<size_t>(1, chart.groups.size());
  const size_t series = std::max<size_t>(1, chart.series.size());
  const double group_width = static_cast<double>(right - left) / static_cast<double>(groups);
  const double bar_width = group_width * 0.8 / static_cast<double>(series);
  for (size_t g = 0; g < chart.groups.size(); ++g) {
    for (size_t s = 0; s < chart.series.size(); ++s) {
      const double v = g < chart.series[s].values.size() ? chart.series[s].values[g] : 0.0;
      const int x0 = left + static_cast<int>(group_width * g + group_width * 0.1 + bar_width * s);
      const int x1 = x0 + std::max(1, static_cast<int>(bar_width) - 2);
      const int y0 = bottom - static_cast<int>((bottom - top) * std::max(0.0, v) / largest);
      fill(x0, y0, x1, bottom, kPalette[s % kPalette.size()]);
    }
  }
  fill(left, bottom, right, bottom + 2, {60, 60, 60});

  // Rows prefixed by filter type 0 (none), deflated.
  std::string raw;
  raw.reserve(static_cast<size_t>(h) * (w * 3 + 1));
  for (int y = 0; y < h; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(&pixels[static_cast<size_t>(y) * w * 3]), w * 3);
  }
  uLongf size = compressBound(raw.size());
  std::string deflated(size, '\0');
  STUNT_CHECK(compress2(reinterpret_cast<Bytef*>(deflated.data()), &size,
                        reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 9) == Z_OK,
              "zlib could not compress a chart");
  deflated.resize(size);
  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string header;
  put_u32(header, static_cast<uint32_t>(w));
  put_u32(header, static_cast<uint32_t>(h));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, no interlace
  chunk(png, "IHDR", header);
  chunk(png, "IDAT", deflated);
  chunk(png, "IEND", "");
  return png;
}

}  // namespace stunt::bench::detail
