# Unit tests of the engine's AWS KMS API (keyclient/api*.c) through
# kc_api_call with JSON requests: key lifecycle, aliases, symmetric data
# operations, deletion windows, rotation, tags, request validation.
# kms_api_test is the harness the KMS API tests share (kms_api_test.h).
add_library(kms_api_test STATIC ${CMAKE_CURRENT_LIST_DIR}/kms_api_test.c)
target_link_libraries(kms_api_test PUBLIC kmsfs_keyclient)

add_executable(test_kms_api ${CMAKE_CURRENT_LIST_DIR}/test_kms_api.c)
target_link_libraries(test_kms_api PRIVATE kms_api_test)
add_test(NAME kms_api COMMAND test_kms_api)
set_tests_properties(kms_api PROPERTIES
  ENVIRONMENT "KMSFS_ARGON2_OPSLIMIT=1;KMSFS_ARGON2_MEMLIMIT=8192"
  TIMEOUT 300)
