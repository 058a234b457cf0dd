# Run with cmake -P: builds the consumer the way a Makefile user does, with nothing but the
# compiler and pkg-config, against an installed glmproxy, then runs it:
#   g++ -std=c++20 main.cpp $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs glmproxy)
# Without PREFIX it first installs GLMPROXY_BUILD_DIR into WORK_DIR/prefix. SHARED=ON: the
# program must load libglmproxy.so (found through LD_LIBRARY_PATH, as a Makefile user sets it).
find_program(PKG_CONFIG pkg-config REQUIRED)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
if(NOT PREFIX)
  set(PREFIX "${WORK_DIR}/prefix")
  execute_process(COMMAND ${CMAKE_COMMAND} --install "${GLMPROXY_BUILD_DIR}" --prefix "${PREFIX}"
    RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install failed: ${rc}")
  endif()
endif()

set(ENV{PKG_CONFIG_PATH} "${PREFIX}/lib/pkgconfig")
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs glmproxy OUTPUT_VARIABLE flags
  RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
message(STATUS "pkg-config --cflags --libs glmproxy: ${flags}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config glmproxy failed: ${rc}")
endif()
string(FIND "${flags}" "-I${PREFIX}/lib/pkgconfig/../../include" at)
if(at EQUAL -1)
  message(FATAL_ERROR "glmproxy.pc does not point into the prefix it was installed to")
endif()

# The command a Makefile would run (CXX_FLAGS/LINKER_FLAGS: the sanitizer presets' flags).
set(command "'${CXX}' -std=c++20 ${CXX_FLAGS} '${SOURCE}' \
$(PKG_CONFIG_PATH='${PREFIX}/lib/pkgconfig' '${PKG_CONFIG}' --cflags --libs glmproxy) \
${LINKER_FLAGS} -o '${WORK_DIR}/consumer'")
message(STATUS "${command}")
execute_process(COMMAND sh -c "${command}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the pkg-config consumer did not build: ${rc}")
endif()

find_program(READELF readelf REQUIRED)
execute_process(COMMAND ${READELF} -d "${WORK_DIR}/consumer" OUTPUT_VARIABLE dynamic)
if(SHARED AND NOT dynamic MATCHES "NEEDED[^\n]*libglmproxy\\.so")
  message(FATAL_ERROR "the consumer does not load libglmproxy.so:\n${dynamic}")
elseif(NOT SHARED AND dynamic MATCHES "libglmproxy\\.so")
  message(FATAL_ERROR "the consumer of a static install loads libglmproxy.so:\n${dynamic}")
endif()

if(SHARED)
  set(ENV{LD_LIBRARY_PATH} "${PREFIX}/lib")
endif()
execute_process(COMMAND "${WORK_DIR}/consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "consumer said: ${out}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "glmproxy [0-9]+\\.[0-9]+\\.[0-9]+ ok")
  message(FATAL_ERROR "the pkg-config consumer failed: ${rc} ${out}")
endif()
