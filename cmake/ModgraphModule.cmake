# modgraph_add_module(<target> ID <id> SOURCES ... [OUTPUT_DIR dir] [INCLUDES ...])
#   Builds one module library `<id>.so`: hidden visibility, no GNU unique symbols
#   (they would merge the statics of every copy), linked only against
#   modgraph::core. Modules reach each other through import(), never the linker.
# modgraph_add_modules(<target prefix> <out var> INCLUDES ... SOURCES <id>=<source>...)
#   modgraph_add_module() for each id=source pair; the targets go to <out var>.
# modgraph_add_bundle(<target> OUTPUT_NAME <name> MODULES <module targets...>)
#   Compiles the sources of several modules into one library: the prod bundle.
set(MODGRAPH_MODULE_FLAGS -fvisibility=hidden -fvisibility-inlines-hidden -fno-gnu-unique)
# Exports only the descriptors: hidden visibility does not cover symbols that
# headers give default visibility (libstdc++'s namespace std, Boost.Asio's
# template statics), and the loader refuses modules that export them.
set(MODGRAPH_MODULE_VERSION_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/modgraph_module.map)

function(_modgraph_module_common target)
  set_target_properties(${target} PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_options(${target} PRIVATE ${MODGRAPH_MODULE_FLAGS})
  # Header-only fmt: a module links nothing but the core library.
  target_link_libraries(${target} PRIVATE modgraph::core fmt::fmt-header-only)
  target_link_options(${target} PRIVATE -Wl,--no-undefined
    -Wl,--version-script=${MODGRAPH_MODULE_VERSION_SCRIPT})
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${MODGRAPH_MODULE_VERSION_SCRIPT})
  modgraph_target_warnings(${target})
endfunction()

function(modgraph_add_module target)
  cmake_parse_arguments(M "" "ID;OUTPUT_DIR" "SOURCES;INCLUDES" ${ARGN})
  if(NOT M_OUTPUT_DIR)
    set(M_OUTPUT_DIR ${CMAKE_BINARY_DIR}/modules)
  endif()
  add_library(${target} MODULE ${M_SOURCES})
  _modgraph_module_common(${target})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME ${M_ID}
    LIBRARY_OUTPUT_DIRECTORY ${M_OUTPUT_DIR})
  target_include_directories(${target} PRIVATE ${M_INCLUDES})
  list(TRANSFORM M_SOURCES PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/)
  set_target_properties(${target} PROPERTIES MODGRAPH_SOURCES "${M_SOURCES}"
    MODGRAPH_INCLUDES "${M_INCLUDES}")
endfunction()

function(modgraph_add_modules prefix out_var)
  cmake_parse_arguments(M "" "" "INCLUDES;SOURCES" ${ARGN})
  set(targets)
  foreach(entry IN LISTS M_SOURCES)
    string(REPLACE "=" ";" pair ${entry})
    list(GET pair 0 id)
    list(GET pair 1 source)
    string(REPLACE "-" "_" target ${prefix}_${id})
    modgraph_add_module(${target} ID ${id} SOURCES ${source} INCLUDES ${M_INCLUDES})
    list(APPEND targets ${target})
  endforeach()
  set(${out_var} ${targets} PARENT_SCOPE)
endfunction()

function(modgraph_add_bundle target)
  cmake_parse_arguments(B "" "OUTPUT_NAME;OUTPUT_DIR" "MODULES" ${ARGN})
  if(NOT B_OUTPUT_DIR)
    set(B_OUTPUT_DIR ${CMAKE_BINARY_DIR}/bundle)
  endif()
  add_library(${target} MODULE)
  _modgraph_module_common(${target})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME ${B_OUTPUT_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${B_OUTPUT_DIR})
  foreach(module IN LISTS B_MODULES)
    get_target_property(sources ${module} MODGRAPH_SOURCES)
    get_target_property(includes ${module} MODGRAPH_INCLUDES)
    target_sources(${target} PRIVATE ${sources})
    if(includes)
      target_include_directories(${target} PRIVATE ${includes})
    endif()
  endforeach()
endfunction()
