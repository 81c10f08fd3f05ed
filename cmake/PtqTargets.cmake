# ptq_add_library(NAME SOURCES ... DEPS ...): one shared library of the project, with the project's
# include root, warnings and (optionally) a precompiled LibTorch header.
function(ptq_add_library name)
  cmake_parse_arguments(ARG "NO_TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} SHARED ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/generated>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(NOT ARG_NO_TORCH)
    ptq_use_torch(${name})
  endif()
endfunction()

# Links LibTorch and, when enabled, precompiles its umbrella header for the target.
function(ptq_use_torch target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  if(PTQ_USE_PCH)
    target_precompile_headers(${target} PRIVATE <torch/torch.h>)
  endif()
endfunction()

# ptq_add_executable(NAME SOURCES ... DEPS ...)
function(ptq_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  ptq_use_torch(${name})
endfunction()

# ptq_add_plugin(NAME SOURCES ... DEPS ...): a plugin that ptq::load_plugin / `ptq --plugin` loads
# (framework/plugin.h). A MODULE library: only ever dlopened, never linked. It links ptq_framework so it
# shares the program's registries (one libptq_framework.so in the process).
function(ptq_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ptq_framework ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  ptq_use_torch(${name})
endfunction()
