# Unit tests of keyclient/: one executable, test_keyclient, covering the
# canonical context, blobs, the local engine (key store, keys, aliases,
# rotation, authorization), passphrase sources and the audit log.
# Argon2id is turned down (KMSFS_ARGON2_*) so the suite stays fast.
add_executable(test_keyclient
  ${CMAKE_CURRENT_LIST_DIR}/test_keyclient.c
  ${CMAKE_CURRENT_LIST_DIR}/test_keyclient_context.c
  ${CMAKE_CURRENT_LIST_DIR}/test_keyclient_blob.c
  ${CMAKE_CURRENT_LIST_DIR}/test_keyclient_local.c
  ${CMAKE_CURRENT_LIST_DIR}/test_keyclient_passphrase.c
  ${CMAKE_CURRENT_LIST_DIR}/test_keyclient_audit.c)
target_link_libraries(test_keyclient PRIVATE kmsfs_keyclient)
add_test(NAME keyclient COMMAND test_keyclient)
set_tests_properties(keyclient PROPERTIES
  ENVIRONMENT "KMSFS_ARGON2_OPSLIMIT=1;KMSFS_ARGON2_MEMLIMIT=8192"
  TIMEOUT 300)

# Root key sources: key files and PKCS#11 tokens (a SoftHSM token made in
# its scratch directory). Its own executable: it sets SOFTHSM2_CONF for
# the process, and fails (never skips) without softhsm2-util.
add_executable(test_keyclient_rootkey ${CMAKE_CURRENT_LIST_DIR}/test_keyclient_rootkey.c)
target_include_directories(test_keyclient_rootkey PRIVATE ${KMSFS_PKCS11_INCLUDE_DIR})
target_link_libraries(test_keyclient_rootkey PRIVATE kmsfs_keyclient)
add_test(NAME keyclient_rootkey COMMAND test_keyclient_rootkey)
set_tests_properties(keyclient_rootkey PROPERTIES
  ENVIRONMENT "KMSFS_ARGON2_OPSLIMIT=1;KMSFS_ARGON2_MEMLIMIT=8192"
  TIMEOUT 300)
