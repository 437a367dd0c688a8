# outbound_layer(NAME DIR DEPS...): one folder = one static library. Sources are the folder's
# *.cpp files (recursively) except *_test.cpp, which form the NAME_test GoogleTest executable.
function(outbound_layer name)
  cmake_parse_arguments(L "" "" "DEPS;PRIVATE_DEPS;TEST_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  set(tests ${srcs})
  list(FILTER srcs EXCLUDE REGEX "_test\\.cpp$")
  list(FILTER tests INCLUDE REGEX "_test\\.cpp$")
  add_library(outbound_${name} STATIC ${srcs})
  target_include_directories(outbound_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(outbound_${name} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  if(OUTBOUND_BUILD_TESTS AND tests)
    add_executable(${name}_test ${tests})
    target_link_libraries(${name}_test PRIVATE outbound_${name} ${L_TEST_DEPS} GTest::gtest_main)
    # The tests themselves are not what is measured: compiled without optimisation they build in
    # about half the time (the code under test keeps the build type's flags).
    target_compile_options(${name}_test PRIVATE -O0)
    gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit)
  endif()
endfunction()
