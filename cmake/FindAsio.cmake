# FindAsio: standalone (non-Boost) Asio, which Debian ships without a CMake config.
# Defines Asio::Asio (header-only, ASIO_STANDALONE, Threads) and Asio_VERSION.
include(FindPackageHandleStandardArgs)
find_package(Threads QUIET)

find_path(Asio_INCLUDE_DIR NAMES asio.hpp asio/version.hpp
  HINTS ENV ASIO_ROOT PATH_SUFFIXES include)

if(Asio_INCLUDE_DIR AND EXISTS "${Asio_INCLUDE_DIR}/asio/version.hpp")
  file(STRINGS "${Asio_INCLUDE_DIR}/asio/version.hpp" _asio_version_line
    REGEX "^#define ASIO_VERSION [0-9]+")
  string(REGEX REPLACE "^#define ASIO_VERSION ([0-9]+).*" "\\1" _asio_v "${_asio_version_line}")
  math(EXPR _asio_major "${_asio_v} / 100000")
  math(EXPR _asio_minor "${_asio_v} / 100 % 1000")
  math(EXPR _asio_patch "${_asio_v} % 100")
  set(Asio_VERSION "${_asio_major}.${_asio_minor}.${_asio_patch}")
  unset(_asio_version_line)
  unset(_asio_v)
endif()

find_package_handle_standard_args(Asio REQUIRED_VARS Asio_INCLUDE_DIR VERSION_VAR Asio_VERSION)

if(Asio_FOUND AND NOT TARGET Asio::Asio)
  add_library(Asio::Asio INTERFACE IMPORTED)
  set_target_properties(Asio::Asio PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${Asio_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;ASIO_NO_DEPRECATED")
  if(TARGET Threads::Threads)
    set_property(TARGET Asio::Asio APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()
endif()
mark_as_advanced(Asio_INCLUDE_DIR)
