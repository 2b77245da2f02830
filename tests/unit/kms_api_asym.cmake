# Unit tests of the engine's asymmetric keys and key import through
# kc_api_call (keyclient/api_asym.c, api_import.c, asym.c, store_import.c):
# CreateKey for RSA and ECC specs, GetPublicKey, Sign/Verify, RSA
# Encrypt/Decrypt and data key pairs cross-checked with plain OpenSSL,
# GetParametersForImport / ImportKeyMaterial / DeleteImportedKeyMaterial
# and the expiry of imported material.
add_executable(test_kms_api_asym ${CMAKE_CURRENT_LIST_DIR}/test_kms_api_asym.c)
target_link_libraries(test_kms_api_asym PRIVATE kms_api_test)
add_test(NAME kms_api_asym COMMAND test_kms_api_asym)
set_tests_properties(kms_api_asym PROPERTIES
  ENVIRONMENT "KMSFS_ARGON2_OPSLIMIT=1;KMSFS_ARGON2_MEMLIMIT=8192"
  TIMEOUT 300)
