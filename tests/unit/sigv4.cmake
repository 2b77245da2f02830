# Unit tests for keyclient/sigv4.c (included by tests/unit/CMakeLists.txt).
#   test_sigv4 - the AWS SigV4 test suite, read in place from shared/, in both
#                directions (sign: canonical request, string to sign,
#                signature, Authorization; verify: the signed requests and
#                their tampered variants), plus an AWS CLI request, malformed
#                headers, the key cache and verification throughput
add_executable(test_sigv4 ${CMAKE_CURRENT_LIST_DIR}/test_sigv4.c)
target_link_libraries(test_sigv4 PRIVATE kmsfs_keyclient PkgConfig::JANSSON)
add_test(NAME sigv4 COMMAND test_sigv4 ${KMSFS_SHARED_DIR}/test-vectors/sigv4)
set_tests_properties(sigv4 PROPERTIES TIMEOUT 120)
