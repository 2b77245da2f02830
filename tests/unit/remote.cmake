# Tests of keyclient's remote transport (included by tests/unit/CMakeLists.txt).
#   kc_remote_driver - the transport driven by JSON commands on stdin, for
#                      tests/kmsd/test_remote_backend.py (a real kmsd: round
#                      trips, errors, restarts, threads, TLS, calls/s)
add_executable(kc_remote_driver ${CMAKE_CURRENT_LIST_DIR}/remote_driver.c)
target_link_libraries(kc_remote_driver PRIVATE kmsfs_keyclient PkgConfig::JANSSON Threads::Threads)
