# Included by the CMake consumer projects: a program that links tether::core
# and nothing else. TETHER_POISON_DIR (written by run_consumer.py) comes first on
# its include path and holds an #error header under the name of every
# websocketpp, OpenSSL, nlohmann/json and asio/ssl header tether includes: if
# tether::core, or a header <tether/core.hpp> pulls in, reached any of them,
# this program would not compile.
if(NOT IS_DIRECTORY "${TETHER_POISON_DIR}")
  message(FATAL_ERROR "TETHER_POISON_DIR is not set (run_consumer.py sets it)")
endif()

if(NOT TARGET tether::core)
  message(FATAL_ERROR "no target tether::core")
endif()
get_target_property(_core_links tether::core INTERFACE_LINK_LIBRARIES)
if(_core_links MATCHES "websocketpp|OpenSSL|ssl|crypto|nlohmann")
  message(FATAL_ERROR "tether::core links more than Asio and threads: ${_core_links}")
endif()

add_executable(consumer_core consumer_main.cpp)
target_include_directories(consumer_core BEFORE PRIVATE "${TETHER_POISON_DIR}")
target_link_libraries(consumer_core PRIVATE tether::core)
target_compile_options(consumer_core PRIVATE -Wall -Wextra -Wpedantic -Werror)
