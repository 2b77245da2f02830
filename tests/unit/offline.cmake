# Unit tests of fs/keyring.c and fs/backing.c: data keys unwrapped, wrapped
# and rewrapped without a mount (ReEncrypt vs through the client), and
# backing files copied, re-encrypted and hashed with holes kept.
add_executable(test_offline ${CMAKE_CURRENT_LIST_DIR}/test_offline.c)
target_link_libraries(test_offline PRIVATE kmsfs_fs)
add_test(NAME offline COMMAND test_offline)
set_tests_properties(offline PROPERTIES
  ENVIRONMENT "KMSFS_ARGON2_OPSLIMIT=1;KMSFS_ARGON2_MEMLIMIT=8192"
  TIMEOUT 120)
