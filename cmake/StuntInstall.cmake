# `cmake --install` yields a CMake package: find_package(stunt) -> stunt::stunt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS stunt compress EXPORT stuntTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/stunt DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT stuntTargets NAMESPACE stunt:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/stunt)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/stuntConfig.cmake.in
  ${PROJECT_BINARY_DIR}/stuntConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/stunt)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/stuntConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/stuntConfig.cmake ${PROJECT_BINARY_DIR}/stuntConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/stunt)
