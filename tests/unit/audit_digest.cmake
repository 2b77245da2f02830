# Unit tests for the audit trail's digests (included by tests/unit/CMakeLists.txt).
#   test_audit_digest - names, file summaries, the signing and public keys and
#                       signatures; a trail written over one-second periods that
#                       verifies clean, and copies tampered with one way each, every
#                       one reported as what it is (a few seconds: real periods)
add_executable(test_audit_digest ${CMAKE_CURRENT_LIST_DIR}/test_audit_digest.c)
target_link_libraries(test_audit_digest PRIVATE kmsfs_keyclient kmsfs_crypto PkgConfig::SODIUM)
add_test(NAME audit_digest COMMAND test_audit_digest)
set_tests_properties(audit_digest PROPERTIES TIMEOUT 120)
