# Tests of keyclient's remote transport (included by tests/unit/CMakeLists.txt).
#   test_remote      - no key service needed: options and credentials refused,
#                      retries (5xx, throttling) and final answers (4xx)
#                      against a canned HTTP server on a thread, the time
#                      bound when nothing listens
#   kc_remote_driver - the transport driven by JSON commands on stdin, for
#                      tests/kmsd/test_remote_backend.py (a real kmsd: round
#                      trips, errors, restarts, threads, TLS, calls/s)
add_executable(test_remote ${CMAKE_CURRENT_LIST_DIR}/test_remote.c)
target_link_libraries(test_remote PRIVATE kmsfs_keyclient Threads::Threads)
add_test(NAME remote COMMAND test_remote)
set_tests_properties(remote PROPERTIES TIMEOUT 120)

add_executable(kc_remote_driver ${CMAKE_CURRENT_LIST_DIR}/remote_driver.c)
target_link_libraries(kc_remote_driver PRIVATE kmsfs_keyclient PkgConfig::JANSSON Threads::Threads)
