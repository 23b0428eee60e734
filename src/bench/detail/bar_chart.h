#pragma once
// Grouped bar charts drawn into PNG images, for reports that open without a server. Only shapes
// are drawn; the page around the image carries the labels, the legend and the numbers.

#include <cstdint>
#include <string>
#include <vector>

namespace stunt::bench::detail {

struct BarSeries {
  std::string name;
  /// One value per group; negative values are drawn as zero.
  std::vector<double> values;
};

struct BarChart {
  /// Groups along the horizontal axis (batch sizes, devices).
  std::vector<std::string> groups;
  std::vector<BarSeries> series;
  int width = 720;
  int height = 300;
};

/// The chart as PNG bytes: groups left to right, one bar per series within each group, in
/// series_color(i), on a white ground with a baseline and light horizontal grid lines at every
/// fifth of the largest value.
std::string bar_chart_png(const BarChart& chart);

/// The colour of series `i` as "#rrggbb", the same in the image and in the page's legend.
std::string series_color(size_t i);

}  // namespace stunt::bench::detail
