# Tests against PostgreSQL. They need the CTest fixture `pg` (tests/CMakeLists.txt:
# pg.cluster.start / pg.cluster.stop, scripts/pg-test-cluster.sh): a throwaway cluster, or the
# server of OUTBOUND_TEST_PG_DSN. They find it in the file named by the environment variable
# OUTBOUND_TEST_PG_DSN_FILE: one postgres:// URL of a role that may create databases and schemas.
set(OUTBOUND_PG_CLUSTER_DIR ${CMAKE_BINARY_DIR}/pg-cluster)
set(OUTBOUND_PG_DSN_FILE ${OUTBOUND_PG_CLUSTER_DIR}/dsn)
# The same properties for tests added otherwise, e.g.
# gtest_discover_tests(x PROPERTIES ${OUTBOUND_PG_TEST_PROPERTIES}).
set(OUTBOUND_PG_TEST_PROPERTIES
  FIXTURES_REQUIRED pg ENVIRONMENT OUTBOUND_TEST_PG_DSN_FILE=${OUTBOUND_PG_DSN_FILE} LABELS pg)

# outbound_pg_test(NAME name COMMAND command [args...] [WORKING_DIRECTORY dir] [TIMEOUT seconds]
#                  [LABELS label...] [ENVIRONMENT VAR=value...]): add_test() plus the fixture `pg`,
# OUTBOUND_TEST_PG_DSN_FILE and the label `pg`. Does nothing when OUTBOUND_BUILD_TESTS is off.
function(outbound_pg_test)
  cmake_parse_arguments(PARSE_ARGV 0 T "" "NAME;WORKING_DIRECTORY;TIMEOUT" "COMMAND;LABELS;ENVIRONMENT")
  if(NOT T_NAME OR NOT T_COMMAND OR T_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "outbound_pg_test(NAME name COMMAND ...): bad arguments: ${ARGV}")
  endif()
  if(NOT OUTBOUND_BUILD_TESTS)
    return()
  endif()
  set(wd)
  if(T_WORKING_DIRECTORY)
    set(wd WORKING_DIRECTORY ${T_WORKING_DIRECTORY})
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_COMMAND} ${wd})
  set_property(TEST ${T_NAME} PROPERTY FIXTURES_REQUIRED pg)
  set_property(TEST ${T_NAME} PROPERTY ENVIRONMENT
    OUTBOUND_TEST_PG_DSN_FILE=${OUTBOUND_PG_DSN_FILE} ${T_ENVIRONMENT})
  set_property(TEST ${T_NAME} PROPERTY LABELS pg ${T_LABELS})
  if(T_TIMEOUT)
    set_property(TEST ${T_NAME} PROPERTY TIMEOUT ${T_TIMEOUT})
  endif()
endfunction()
