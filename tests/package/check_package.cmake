# Installs sse into a staging prefix, then configures, builds and runs tests/package against it.
# Inputs: SOURCE_DIR, WORK_DIR, GENERATOR, CXX_COMPILER, WITH_REDIS, WITH_HTTP2 (the components
# were built).
file(REMOVE_RECURSE "${WORK_DIR}")
set(stage "${WORK_DIR}/stage")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/sse-build" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DSSE_BUILD_TESTS=OFF -DSSE_BUILD_EXAMPLES=OFF
    -DCMAKE_INSTALL_PREFIX=${stage})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/sse-build" --target install)

foreach(f include/sse/sse.hpp include/sse/client.hpp include/sse/testing.hpp
          include/sse/detail/client_session.hpp include/sse/detail/client_policy.hpp
          include/sse/detail/client_waiter.hpp share/cmake/sse/sseConfig.cmake
          share/cmake/sse/sseConfigVersion.cmake share/cmake/sse/FindAsio.cmake)
  if(NOT EXISTS "${stage}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

if(WITH_HTTP2)
  foreach(f include/sse/tls.hpp include/sse/tls_client.hpp include/sse/http2.hpp share/cmake/sse/sseTlsTargets.cmake
            share/cmake/sse/sseHttp2Targets.cmake share/cmake/sse/Findnghttp2.cmake)
    if(NOT EXISTS "${stage}/${f}")
      message(FATAL_ERROR "not installed: ${f}")
    endif()
  endforeach()
endif()
# Only the staging prefix is searched, so the consumer cannot see the source tree.
if(WITH_REDIS)
  foreach(f include/sse/redis.hpp share/cmake/sse/sseRedisTargets.cmake share/cmake/sse/Findhiredis.cmake)
    if(NOT EXISTS "${stage}/${f}")
      message(FATAL_ERROR "not installed: ${f}")
    endif()
  endforeach()
endif()
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package" -B "${WORK_DIR}/consumer-build"
    -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${stage}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DSSE_WITH_REDIS=${WITH_REDIS} -DSSE_WITH_HTTP2=${WITH_HTTP2})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer-build")
run("${WORK_DIR}/consumer-build/consumer")

set(expected "event: greeting\nid: 1\ndata: hello\n\nid: 2\ndata: {\"ok\":true}\n\n")
if(NOT last_output STREQUAL expected)
  message(FATAL_ERROR "consumer printed:\n${last_output}\nexpected:\n${expected}")
endif()
if(WITH_REDIS)
  run("${WORK_DIR}/consumer-build/redis_consumer")
  if(NOT last_output STREQUAL "redis: not connected to redis\n")
    message(FATAL_ERROR "redis_consumer printed:\n${last_output}")
  endif()
  # Only COMPONENTS redis looks for hiredis: without it the core is still found, the component
  # is not, and the message says what is missing.
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package" -B "${WORK_DIR}/no-hiredis-core"
      -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${stage}
      -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_DISABLE_FIND_PACKAGE_hiredis=ON)
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package"
      -B "${WORK_DIR}/no-hiredis-redis" -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
      -DCMAKE_PREFIX_PATH=${stage} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
      -DCMAKE_DISABLE_FIND_PACKAGE_hiredis=ON -DSSE_WITH_REDIS=ON
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "needs hiredis")
    message(FATAL_ERROR "COMPONENTS redis without hiredis should fail naming it:\n${out}\n${err}")
  endif()
endif()
if(WITH_HTTP2)
  run("${WORK_DIR}/consumer-build/http2_consumer")
  if(NOT last_output MATCHES "^tls: refused\nhttp2: nghttp2 [0-9.]+\n$")
    message(FATAL_ERROR "http2_consumer printed:\n${last_output}")
  endif()
  # Only COMPONENTS http2 looks for nghttp2: without it the component is not found, and the
  # message says what is missing.
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package"
      -B "${WORK_DIR}/no-nghttp2" -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
      -DCMAKE_PREFIX_PATH=${stage} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
      -DCMAKE_DISABLE_FIND_PACKAGE_nghttp2=ON -DSSE_WITH_HTTP2=ON
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "needs nghttp2")
    message(FATAL_ERROR "COMPONENTS http2 without nghttp2 should fail naming it:\n${out}\n${err}")
  endif()
endif()
message(STATUS "installed package found and used by an outside project")
