// Catches the exception a boundary call throws, then calls again.
#include <cstdio>
#include <stdexcept>
extern "C" int rev_throw(int x);
int main() {
  for (int i = -1; i < 3; i++) {
    try { std::printf("throw(%d) = %d\n", i, rev_throw(i)); }
    catch (const std::exception &e) { std::printf("caught %s\n", e.what()); }
  }
  return 0;
}
