# Run with cmake -P: configures, builds and installs a shared glmproxy (and glmproxy::admin)
# from SOURCE_DIR into WORK_DIR/prefix, for the tests of the shared library (fixture
# glmproxy_shared). Only the libraries are built; the build tree is kept between runs so that a
# rerun rebuilds only what changed.
set(build "${WORK_DIR}/build")
set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${prefix}")

execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${build}" -G "${GENERATOR}"
    -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Debug
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_SHARED_LINKER_FLAGS=${SHARED_LINKER_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}"
    -Dglmproxy_DEVELOPER_MODE=${DEVELOPER_MODE} -Dglmproxy_BUILD_ADMIN=ON
    -Dglmproxy_BUILD_TESTS=OFF -Dglmproxy_BUILD_EXAMPLES=OFF -Dglmproxy_BUILD_MOCK=OFF
    -Dglmproxy_BUILD_BENCHMARKS=OFF
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "shared glmproxy: configure failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${build}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "shared glmproxy: build failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install "${build}" --prefix "${prefix}"
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "shared glmproxy: install failed: ${rc}")
endif()
foreach(f lib/libglmproxy.so lib/libglmproxy_admin.so lib/pkgconfig/glmproxy.pc)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "shared glmproxy: the install is missing ${f}")
  endif()
endforeach()
