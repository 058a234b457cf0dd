# Run with cmake -DDUMP=<prometheus_dump> -DPROMTOOL=<promtool> -DOUT=<file> -P: writes the
# exposition after mixed traffic and fails on any complaint of `promtool check metrics`.
execute_process(COMMAND "${DUMP}" OUTPUT_FILE "${OUT}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "prometheus_dump failed (${rc}): ${err}")
endif()
execute_process(COMMAND "${PROMTOOL}" check metrics INPUT_FILE "${OUT}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT "${out}${err}" STREQUAL "")
  message(FATAL_ERROR "promtool check metrics complained (exit ${rc}):\n${out}${err}")
endif()
message(STATUS "promtool accepts ${OUT}")
