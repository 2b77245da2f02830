# Unit tests of account-mode (kmsd) authorization through kc_api_call:
# the default key policy and identity policies, key policies naming
# callers, explicit Deny, encryption-context conditions, grants and their
# constraints, the lockout safety check, AWS's denial messages, policy
# changes seen by the next request, and the check's cost per call.
add_executable(test_kms_api_authz ${CMAKE_CURRENT_LIST_DIR}/test_kms_api_authz.c)
target_link_libraries(test_kms_api_authz PRIVATE kms_api_test)
add_test(NAME kms_api_authz COMMAND test_kms_api_authz)
set_tests_properties(kms_api_authz PROPERTIES
  ENVIRONMENT "KMSFS_ARGON2_OPSLIMIT=1;KMSFS_ARGON2_MEMLIMIT=8192"
  TIMEOUT 300)
