# The one-way include rule between folders (docs/architecture.md, "Folders and the include
# rule"), checked on every #include of src/, admin/ and gateway/:
#   cmake -DSOURCE_DIR=<repository root> -P tests/include_rule_test.cmake
# Plain CMake, no Python: the CI machine may not have it.
#
# - A file in src/<X>/ may include src/<Y>/ only when Y is X or below X in kOrder.
# - src/proxy_client.cpp (a file directly in src/) is the top: it may include anything; no
#   folder may include a file directly in src/.
# - Public headers ("glmproxy/...", include/glmproxy/) may be included by all.
# - admin/ and gateway/ are built on public headers only: no include of src/, and their
#   CMakeLists.txt does not put src/ on the include path.
# Every violation is reported (file:line, the two folders), then the test fails.
cmake_minimum_required(VERSION 3.25)

if(NOT SOURCE_DIR)
  message(FATAL_ERROR "usage: cmake -DSOURCE_DIR=<repository root> -P include_rule_test.cmake")
endif()

# Top to bottom.
set(kOrder client keys cache batch metrics transport protocol admission buffer config core)
list(JOIN kOrder " > " kOrderText)

set(violations "")
set(files_checked 0)
set(includes_checked 0)

# The folder a quoted include names under src/: its first path component when src/ has such a
# folder; "<root>" for a file directly in src/; "" when it is not a src/ file (a public header,
# a system or third-party header, a file beside the includer).
function(src_folder_of target out)
  set(folder "")
  if(target MATCHES "^([^/]+)/")
    set(first "${CMAKE_MATCH_1}")
    if(NOT first STREQUAL "glmproxy" AND IS_DIRECTORY "${SOURCE_DIR}/src/${first}")
      set(folder "${first}")
    endif()
  elseif(EXISTS "${SOURCE_DIR}/src/${target}" AND NOT IS_DIRECTORY "${SOURCE_DIR}/src/${target}")
    set(folder "<root>")
  endif()
  set(${out} "${folder}" PARENT_SCOPE)
endfunction()

# Calls check(file line target) for each #include "..." / <...> of `file`, with its line number.
macro(scan_includes file)
  file(READ "${file}" content)
  # One list element per line: characters that mean something to CMake lists are replaced
  # first (no include path contains them).
  string(REPLACE "\\" "/" content "${content}")
  string(REPLACE ";" "," content "${content}")
  string(REPLACE "[" "(" content "${content}")
  string(REPLACE "]" ")" content "${content}")
  string(REPLACE "\n" ";" lines "${content}")
  set(line_no 0)
  foreach(line IN LISTS lines)
    math(EXPR line_no "${line_no} + 1")
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*[\"<]([^\">]+)[\">]")
      math(EXPR includes_checked "${includes_checked} + 1")
      check("${file}" "${line_no}" "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  math(EXPR files_checked "${files_checked} + 1")
endmacro()

# --- src/ -------------------------------------------------------------------------------------

macro(check file line target)
  src_folder_of("${target}" to)
  if(NOT to STREQUAL "" AND NOT from STREQUAL "<root>")
    if(to STREQUAL "<root>")
      list(APPEND violations
        "${rel}:${line}: ${from}/ includes \"${target}\", a file directly in src/ (the top, which only wires)")
    elseif(NOT to STREQUAL from)
      list(FIND kOrder "${to}" to_index)
      if(to_index EQUAL -1)
        list(APPEND violations
          "${rel}:${line}: ${from}/ includes \"${target}\" from src/${to}/, a folder that is not in the layer order (add it to docs/architecture.md and this test)")
      elseif(to_index LESS from_index)
        list(APPEND violations
          "${rel}:${line}: ${from}/ includes \"${target}\", but ${to}/ is above ${from}/ (order: ${kOrderText})")
      endif()
    endif()
  endif()
endmacro()

file(GLOB_RECURSE src_files LIST_DIRECTORIES false RELATIVE "${SOURCE_DIR}"
  "${SOURCE_DIR}/src/*.cpp" "${SOURCE_DIR}/src/*.hpp" "${SOURCE_DIR}/src/*.h"
  "${SOURCE_DIR}/src/*.cc" "${SOURCE_DIR}/src/*.inc")
list(SORT src_files)
foreach(rel IN LISTS src_files)
  if(rel MATCHES "^src/([^/]+)/")
    set(from "${CMAKE_MATCH_1}")
    list(FIND kOrder "${from}" from_index)
    if(from_index EQUAL -1)
      list(APPEND violations
        "${rel}: src/${from}/ is not in the layer order (add it to docs/architecture.md and this test)")
      continue()
    endif()
  else()
    set(from "<root>")
    set(from_index -1)
  endif()
  scan_includes("${SOURCE_DIR}/${rel}")
endforeach()

# --- admin/ and gateway/: public headers only -----------------------------------------------

macro(check file line target)
  src_folder_of("${target}" to)
  if(NOT to STREQUAL "")
    if(to STREQUAL "<root>")
      set(to_text "src/")
    else()
      set(to_text "src/${to}/")
    endif()
    list(APPEND violations
      "${rel}:${line}: ${component}/ includes \"${target}\" from ${to_text}: ${component}/ is built on public headers only (include/glmproxy/)")
  endif()
endmacro()

foreach(component admin gateway)
  if(NOT IS_DIRECTORY "${SOURCE_DIR}/${component}")
    continue()
  endif()
  file(GLOB_RECURSE component_files LIST_DIRECTORIES false RELATIVE "${SOURCE_DIR}"
    "${SOURCE_DIR}/${component}/*.cpp" "${SOURCE_DIR}/${component}/*.hpp"
    "${SOURCE_DIR}/${component}/*.h" "${SOURCE_DIR}/${component}/*.cc"
    "${SOURCE_DIR}/${component}/*.in")
  list(SORT component_files)
  foreach(rel IN LISTS component_files)
    scan_includes("${SOURCE_DIR}/${rel}")
  endforeach()
  # Nor may its build reach into src/ (an include path, or a source compiled in from there).
  file(GLOB_RECURSE component_cmake LIST_DIRECTORIES false RELATIVE "${SOURCE_DIR}"
    "${SOURCE_DIR}/${component}/CMakeLists.txt" "${SOURCE_DIR}/${component}/*.cmake")
  foreach(rel IN LISTS component_cmake)
    file(STRINGS "${SOURCE_DIR}/${rel}" cmake_lines)
    foreach(cmake_line IN LISTS cmake_lines)
      if(cmake_line MATCHES "^[^#]*(PROJECT_SOURCE_DIR|CMAKE_SOURCE_DIR|\\.\\./)[}]?/?src([/ )\"]|$)")
        list(APPEND violations
          "${rel}: ${component}/'s build uses src/ (\"${cmake_line}\"): it is built on public headers only")
      endif()
    endforeach()
  endforeach()
endforeach()

list(LENGTH violations n)
if(n GREATER 0)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "include rule: ${n} violation(s):\n  ${text}")
endif()
if(files_checked LESS 10 OR includes_checked LESS 50)
  # Guards the test itself: a wrong SOURCE_DIR or glob must not pass by checking nothing.
  message(FATAL_ERROR "include rule: only ${files_checked} files and ${includes_checked} "
    "includes found under ${SOURCE_DIR}: wrong SOURCE_DIR?")
endif()
message(STATUS "include rule: ${files_checked} files, ${includes_checked} includes, no violation")
