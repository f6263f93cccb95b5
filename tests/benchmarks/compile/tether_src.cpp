// Compile-cost benchmark (item 6): the file a separately compiled program
// builds once (-std=c++17 -DTETHER_SEPARATE_COMPILATION).
#include <tether/src.hpp>
