# Unit tests for crypto/ (included by tests/unit/CMakeLists.txt).
#   test_crypto     - header, size mapping, block sealing/opening, tampering
#   test_wycheproof - Wycheproof AES-GCM and XChaCha20-Poly1305 vectors
#                     through the kmsfs AEAD wrapper
add_executable(test_crypto ${CMAKE_CURRENT_LIST_DIR}/test_crypto.c)
target_link_libraries(test_crypto PRIVATE kmsfs_crypto)
add_test(NAME crypto_unit COMMAND test_crypto)

add_executable(test_wycheproof ${CMAKE_CURRENT_LIST_DIR}/test_wycheproof.c)
target_link_libraries(test_wycheproof PRIVATE kmsfs_crypto PkgConfig::JANSSON)
add_test(NAME crypto_wycheproof
         COMMAND test_wycheproof ${KMSFS_SHARED_DIR}/test-vectors/wycheproof)
