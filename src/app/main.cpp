#include <iostream>

int main() {
  std::cout << "modelwarden (skeleton)\n";
  return 0;
}
