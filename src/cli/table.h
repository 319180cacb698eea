// cli/table.h: plain-text tables for the command-line client (column widths
// from the content, UTF-8 counted by code points). Not thread-safe.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace mw::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out, bool with_header) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace mw::cli
