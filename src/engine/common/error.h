// hai::Error is the one exception type the engine throws for bad input: a
// corrupt file, an unknown architecture, a wrong argument. Its message names
// the file, field or value that was wrong; the CLI prints it and exits 1.
#pragma once

#include <stdexcept>
#include <string>

namespace hai {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace hai
