# Run with cmake -P: installs glmproxy from GLMPROXY_BUILD_DIR into WORK_DIR/prefix (or uses
# the install in PREFIX), then configures, builds and runs the consumer project against it.
file(REMOVE_RECURSE "${WORK_DIR}")
if(PREFIX)
  set(prefix "${PREFIX}")
else()
  set(prefix "${WORK_DIR}/prefix")
  execute_process(COMMAND ${CMAKE_COMMAND} --install "${GLMPROXY_BUILD_DIR}" --prefix "${prefix}"
    RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install failed: ${rc}")
  endif()
endif()
foreach(f include/glmproxy/glmproxy.hpp include/glmproxy/version.hpp
          lib/cmake/glmproxy/glmproxyConfig.cmake lib/cmake/glmproxy/glmproxyConfigVersion.cmake
          lib/pkgconfig/glmproxy.pc)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "install is missing ${f}")
  endif()
endforeach()

execute_process(COMMAND ${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build"
    -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}" -DCMAKE_BUILD_TYPE=Debug
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer configure failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer build failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "consumer said: ${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer run failed: ${rc}")
endif()
if(NOT out MATCHES "glmproxy [0-9]+\\.[0-9]+\\.[0-9]+ ok")
  message(FATAL_ERROR "consumer printed an unexpected line")
endif()

execute_process(COMMAND "${WORK_DIR}/build/admin_consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "admin_consumer said: ${out}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "admin on http://127.0.0.1:[0-9]+ ok")
  message(FATAL_ERROR "admin_consumer run failed: ${rc} ${out}")
endif()

# The pkg-config file resolves too (when pkg-config is present).
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig")
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs glmproxy RESULT_VARIABLE rc
    OUTPUT_VARIABLE flags)
  if(NOT rc EQUAL 0 OR NOT flags MATCHES "-lglmproxy")
    message(FATAL_ERROR "pkg-config glmproxy failed: ${flags}")
  endif()
endif()
