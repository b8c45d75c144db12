// capstanctl: the command line for Capstan, in kubectl's image. See commands.h.
#include <iostream>
#include <string>
#include <vector>

#include "tools/capstanctl/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return capstan::capstanctl::Run(args, std::cin, std::cout, std::cerr);
}
