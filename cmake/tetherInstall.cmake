# Install rules: headers, the tether::* targets (core, websocketpp, oauth2,
# genesys, tether; core_boost when Boost was found), a relocatable CMake package and pkg-config files
# (tether.pc, tether-core.pc). Everything goes under share/ (header-only: no arch).
include(CMakePackageConfigHelpers)

set(TETHER_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/tether" CACHE STRING
    "Where tetherConfig.cmake is installed, relative to the prefix")
set(TETHER_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
    "Where tether.pc is installed, relative to the prefix")
mark_as_advanced(TETHER_INSTALL_CMAKEDIR TETHER_INSTALL_PKGCONFIGDIR)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/tether"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.ipp")

install(TARGETS tether_core tether_websocketpp tether_oauth2 tether_genesys tether EXPORT tetherTargets)
# Boost mode, when Boost was found here (tetherConfig.cmake: component core_boost).
if(TARGET tether_core_boost)
  install(TARGETS tether_core_boost EXPORT tetherTargets)
endif()
install(EXPORT tetherTargets NAMESPACE tether:: DESTINATION "${TETHER_INSTALL_CMAKEDIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/tetherConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/tetherConfig.cmake"
  INSTALL_DESTINATION "${TETHER_INSTALL_CMAKEDIR}"
  NO_SET_AND_CHECK_MACRO)

# Before 1.0 a minor release may break the API; from 1.0 on, only a major one.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_tether_compatibility SameMinorVersion)
else()
  set(_tether_compatibility SameMajorVersion)
endif()
# ARCH_INDEPENDENT: a header-only package must not refuse a 32-bit consumer.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/tetherConfigVersion.cmake"
  COMPATIBILITY ${_tether_compatibility} ARCH_INDEPENDENT)

install(FILES
  "${PROJECT_BINARY_DIR}/tetherConfig.cmake"
  "${PROJECT_BINARY_DIR}/tetherConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/Findasio.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/tetherFindAsio.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/tetherCompiled.cmake"
  DESTINATION "${TETHER_INSTALL_CMAKEDIR}")

# pkg-config: the prefix is found relative to the .pc file, so the installed
# tree can be moved (or packaged) anywhere.
if(IS_ABSOLUTE "${TETHER_INSTALL_PKGCONFIGDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  message(FATAL_ERROR "tether: TETHER_INSTALL_PKGCONFIGDIR and CMAKE_INSTALL_INCLUDEDIR must be "
                      "relative to the prefix for a relocatable tether.pc")
endif()
file(RELATIVE_PATH TETHER_PC_TO_PREFIX "/prefix/${TETHER_INSTALL_PKGCONFIGDIR}" "/prefix")
string(REGEX REPLACE "/$" "" TETHER_PC_TO_PREFIX "${TETHER_PC_TO_PREFIX}")
configure_file("${PROJECT_SOURCE_DIR}/cmake/tether.pc.in" "${PROJECT_BINARY_DIR}/tether.pc" @ONLY)
# tether-core.pc: what tether::core needs (Asio headers and threads only).
configure_file("${PROJECT_SOURCE_DIR}/cmake/tether-core.pc.in" "${PROJECT_BINARY_DIR}/tether-core.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/tether.pc" "${PROJECT_BINARY_DIR}/tether-core.pc"
        DESTINATION "${TETHER_INSTALL_PKGCONFIGDIR}")
