# Defines asio::asio (standalone Asio): from Asio's own CMake package when there
# is one (vcpkg and Conan ship an asio-config.cmake), else from Findasio.cmake
# next to this file. Used by CMakeLists.txt and, installed, by tetherConfig.cmake.
# _tether_asio_find_args: extra find_package() arguments for the fallback
# (REQUIRED when unset; tetherConfig.cmake forwards its own QUIET/REQUIRED).
if(NOT TARGET asio::asio)
  find_package(asio CONFIG QUIET)
  if(NOT TARGET asio::asio)
    if(NOT DEFINED _tether_asio_find_args)
      set(_tether_asio_find_args REQUIRED)
    endif()
    set(_tether_saved_module_path "${CMAKE_MODULE_PATH}")
    list(PREPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
    find_package(asio MODULE ${_tether_asio_find_args})
    set(CMAKE_MODULE_PATH "${_tether_saved_module_path}")
    unset(_tether_saved_module_path)
  endif()
endif()
