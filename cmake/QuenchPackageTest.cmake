# The e2e/package test (test/e2e/CMakeLists.txt), run with cmake -P:
# installs the build tree into a fresh prefix, checks the installed layout and
# that the installed tools start (RUNPATH), then configures, builds and runs
# examples/app against the installed package with the same generator and C
# compiler.
#
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=...
#         [-DMAKE_PROGRAM=...] [-DC_COMPILER=...] -P QuenchPackageTest.cmake
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "QuenchPackageTest.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run what)
  message(STATUS "${what}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc})")
  endif()
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(app_build ${WORK_DIR}/app-build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

foreach(file
    bin/quench-compile bin/quench-import bin/quench-opt
    lib/libquench_runtime.a include/quench/runtime.h
    lib/cmake/Quench/QuenchConfig.cmake
    lib/cmake/Quench/QuenchConfigVersion.cmake
    lib/cmake/Quench/QuenchTargets.cmake
    lib/cmake/Quench/QuenchModel.cmake)
  if(NOT EXISTS ${prefix}/${file})
    message(FATAL_ERROR "not installed: ${prefix}/${file}")
  endif()
endforeach()
# The codegen ABI header is not for applications (docs/runtime.md).
if(EXISTS ${prefix}/include/quench/runtime_abi.h)
  message(FATAL_ERROR "installed but not for applications: "
    "${prefix}/include/quench/runtime_abi.h")
endif()
# The installed tools find libMLIR.so and each other's libraries.
foreach(tool quench-compile quench-import quench-opt)
  execute_process(COMMAND ${prefix}/bin/${tool} --version
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "installed ${tool} does not start (${rc}): ${err}")
  endif()
endforeach()

set(configure_args -G ${GENERATOR} -S ${SOURCE_DIR}/examples/app
    -B ${app_build} -DQuench_DIR=${prefix}/lib/cmake/Quench
    -DCMAKE_BUILD_TYPE=Release)
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(C_COMPILER)
  list(APPEND configure_args -DCMAKE_C_COMPILER=${C_COMPILER})
endif()
run("configure examples/app" ${CMAKE_COMMAND} ${configure_args})
run("build examples/app" ${CMAKE_COMMAND} --build ${app_build} --config Release)

# The models were compiled by the installed compiler, not the build tree's.
file(STRINGS ${app_build}/CMakeCache.txt quench_dir REGEX "^Quench_DIR:")
message(STATUS "${quench_dir}")

set(app ${app_build}/quench_app)
if(NOT EXISTS ${app})
  set(app ${app_build}/Release/quench_app) # multi-config generators
endif()
run("run quench_app" ${app})
