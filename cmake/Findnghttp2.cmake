# Finds nghttp2's library and makes the imported target nghttp2::nghttp2. Debian 12's
# libnghttp2-dev ships libnghttp2.pc and no CMake config.
#   nghttp2_FOUND, nghttp2_VERSION, nghttp2::nghttp2
if(TARGET nghttp2::nghttp2)
  set(nghttp2_FOUND TRUE)
  return()
endif()

find_path(NGHTTP2_INCLUDE_DIR nghttp2/nghttp2.h)
find_library(NGHTTP2_LIBRARY NAMES nghttp2)

if(NGHTTP2_INCLUDE_DIR AND EXISTS "${NGHTTP2_INCLUDE_DIR}/nghttp2/nghttp2ver.h")
  file(STRINGS "${NGHTTP2_INCLUDE_DIR}/nghttp2/nghttp2ver.h" _nghttp2_version_line
       REGEX "^#define NGHTTP2_VERSION \"[0-9.]+")
  string(REGEX REPLACE ".*\"([0-9.]+).*" "\\1" nghttp2_VERSION "${_nghttp2_version_line}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(nghttp2 REQUIRED_VARS NGHTTP2_LIBRARY NGHTTP2_INCLUDE_DIR
                                  VERSION_VAR nghttp2_VERSION)
mark_as_advanced(NGHTTP2_INCLUDE_DIR NGHTTP2_LIBRARY)

if(nghttp2_FOUND AND NOT TARGET nghttp2::nghttp2)
  add_library(nghttp2::nghttp2 UNKNOWN IMPORTED)
  set_target_properties(nghttp2::nghttp2 PROPERTIES
    IMPORTED_LOCATION "${NGHTTP2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NGHTTP2_INCLUDE_DIR}")
endif()
