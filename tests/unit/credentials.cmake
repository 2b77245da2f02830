# Unit tests of keyclient/credentials.c (picked up by tests/unit/CMakeLists.txt,
# which includes every *.cmake fragment here):
#   test_credentials - AWS credentials, region and endpoint from the
#                      environment and the AWS CLI's credentials and config
#                      files (written into scratch homes): precedence,
#                      profiles, syntax, long session tokens and profile
#                      names, errors that never show a secret
add_executable(test_credentials ${CMAKE_CURRENT_LIST_DIR}/test_credentials.c)
target_link_libraries(test_credentials PRIVATE kmsfs_keyclient)
add_test(NAME credentials COMMAND test_credentials)
