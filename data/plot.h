#pragma once
// A line chart as a PNG, for loss curves beside metrics.csv: the raw series in light grey, its
// running mean in blue, log-scaled y, labelled axes (stb_easy_font's bitmap glyphs). Small on
// purpose: one chart type, no dependencies beyond stb.

#include <string>
#include <utility>
#include <vector>

namespace diffkd::data {

// points: (x, y) with y > 0 (plotted on a log scale); title goes above the chart.
void write_line_chart(const std::string& path, const std::vector<std::pair<double, double>>& points,
                      const std::string& title, const std::string& x_label);

}  // namespace diffkd::data
