// Plain-text tables for results people read (CLI output, report programs): aligned columns, a rule
// under the header, numbers right-aligned.
#pragma once

#include <string>
#include <vector>

namespace ptq {

class Table {
 public:
  explicit Table(std::vector<std::string> header);
  Table& add_row(std::vector<std::string> cells);
  std::string to_string() const;
  // GitHub-flavoured Markdown, for docs.
  std::string to_markdown() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace ptq
