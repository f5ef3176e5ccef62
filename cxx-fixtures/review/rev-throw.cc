// A C-linkage boundary function of a C++ component that throws.
#include <stdexcept>
extern "C" int rev_throw(int x) { if (x < 0) throw std::runtime_error("neg"); return x * 3; }
