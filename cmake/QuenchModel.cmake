# quench_add_model: compile a model with quench-compile at build time and wrap
# the object in a static library target. Part of the Quench CMake package
# (find_package(Quench) includes it); docs/compile.md describes the C ABI.
#
#   quench_add_model(<target> <model.onnx|model.onnxtxt|model.mlir|.mlirbc>
#                    [NAME <c-name>]            # symbol prefix, header name
#                    [SHAPES <input>=<dims> ...] # e.g. input_ids=1x32
#                    [CPU <cpu>]                # host (default) or x86-64-v3, ...
#                    [CPU_FEATURES <+f|-f> ...] # joined with ','
#                    [DEPENDS <file> ...]       # e.g. ONNX external-data files
#                    [OPTIONS <quench-compile argument> ...])
#
# Runs `quench-compile <model> -o <dir>/<name> --emit=obj --name <name> ...`
# when the model, the extra DEPENDS or the compiler change, producing
# <dir>/<name>.o and <dir>/<name>.h with <dir> =
# ${CMAKE_CURRENT_BINARY_DIR}/quench_models/<target>. <target> is a STATIC
# library holding the object; linking it gives the header's directory as an
# include directory and links Quench::runtime (and through it threads and
# libm). A relative model path is relative to CMAKE_CURRENT_SOURCE_DIR.
#
# NAME defaults to <target> made a C identifier. Every exported symbol is
# prefixed with it (<name>_model, <name>_run), so any number of models link
# into one program as long as their names differ.
#
# CPU defaults to ${QUENCH_MODEL_CPU} when that variable is set (e.g.
# -DQUENCH_MODEL_CPU=x86-64-v3 on the command line), else to "host": code for
# the features of the machine that builds, the fastest choice but one that
# may not run on older CPUs. Set CPU to a named CPU for objects that run
# elsewhere (and when cross-compiling).
#
# The target's properties QUENCH_MODEL_NAME and QUENCH_MODEL_HEADER hold the
# model name and the header's full path.

function(quench_add_model target model)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "" "NAME;CPU"
                        "SHAPES;CPU_FEATURES;DEPENDS;OPTIONS")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR
      "quench_add_model(${target}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET Quench::quench-compile)
    message(FATAL_ERROR
      "quench_add_model(${target}): Quench::quench-compile is not defined; "
      "call find_package(Quench) first")
  endif()

  if(ARG_NAME)
    set(name "${ARG_NAME}")
  else()
    string(MAKE_C_IDENTIFIER "${target}" name)
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR
      "quench_add_model(${target}): NAME '${name}' is not a C identifier")
  endif()

  get_filename_component(model_path "${model}" ABSOLUTE
                         BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  set(deps)
  foreach(dep IN LISTS ARG_DEPENDS)
    get_filename_component(dep "${dep}" ABSOLUTE
                           BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND deps "${dep}")
  endforeach()

  if(DEFINED ARG_CPU)
    set(cpu "${ARG_CPU}")
  elseif(QUENCH_MODEL_CPU)
    set(cpu "${QUENCH_MODEL_CPU}")
  else()
    set(cpu host)
  endif()

  set(args --emit=obj "--name=${name}" "--cpu=${cpu}")
  if(ARG_CPU_FEATURES)
    list(JOIN ARG_CPU_FEATURES "," features)
    list(APPEND args "--cpu-features=${features}")
  endif()
  foreach(shape IN LISTS ARG_SHAPES)
    list(APPEND args --shape "${shape}")
  endforeach()
  list(APPEND args ${ARG_OPTIONS})

  set(dir "${CMAKE_CURRENT_BINARY_DIR}/quench_models/${target}")
  set(obj "${dir}/${name}.o")
  set(hdr "${dir}/${name}.h")
  file(MAKE_DIRECTORY "${dir}")
  add_custom_command(
    OUTPUT "${obj}" "${hdr}"
    COMMAND Quench::quench-compile "${model_path}" -o "${dir}/${name}" ${args}
    DEPENDS "${model_path}" ${deps} "$<TARGET_FILE:Quench::quench-compile>"
    COMMENT "Compiling model ${model} with quench-compile (${name}.o, ${name}.h)"
    VERBATIM)
  set_source_files_properties("${obj}" PROPERTIES
    EXTERNAL_OBJECT TRUE GENERATED TRUE)

  add_library(${target} STATIC "${obj}" "${hdr}")
  # No sources to compile: the archiver rule comes from an enabled language.
  get_property(languages GLOBAL PROPERTY ENABLED_LANGUAGES)
  if("C" IN_LIST languages)
    set_target_properties(${target} PROPERTIES LINKER_LANGUAGE C)
  else()
    set_target_properties(${target} PROPERTIES LINKER_LANGUAGE CXX)
  endif()
  set_target_properties(${target} PROPERTIES
    QUENCH_MODEL_NAME "${name}"
    QUENCH_MODEL_HEADER "${hdr}")
  target_include_directories(${target} PUBLIC "${dir}")
  target_link_libraries(${target} PUBLIC Quench::runtime)
endfunction()
