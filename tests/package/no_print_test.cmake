# Run with cmake -P -DLIBRARY=path: fails if the library references any symbol that writes to
# stdout/stderr or ends the process. Logging goes to the user's callback instead.
find_program(NM nm REQUIRED)
execute_process(COMMAND ${NM} --undefined-only --demangle "${LIBRARY}"
  OUTPUT_VARIABLE symbols RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm failed on ${LIBRARY}")
endif()
set(forbidden
  "printf" "vprintf" "fprintf" "vfprintf" "__printf_chk" "__fprintf_chk" "__vfprintf_chk"
  "puts" "fputs" "putchar" "perror" "stdout" "stderr"
  "abort" "exit" "_exit" "quick_exit"
  "std::cout" "std::cerr" "std::clog" "std::wcout" "std::wcerr")
string(REPLACE "\n" ";" lines "${symbols}")
set(found "")
foreach(line IN LISTS lines)
  # "                 U name" (static archives list members too; skip those lines)
  if(line MATCHES "^ +U (.+)$")
    set(sym "${CMAKE_MATCH_1}")
    string(REGEX REPLACE "@.*$" "" sym "${sym}")
    list(FIND forbidden "${sym}" idx)
    if(NOT idx EQUAL -1)
      list(APPEND found "${sym}")
    endif()
  endif()
endforeach()
if(found)
  list(REMOVE_DUPLICATES found)
  message(FATAL_ERROR "${LIBRARY} references output/termination symbols: ${found}")
endif()
message(STATUS "no printing or aborting symbols in ${LIBRARY}")
