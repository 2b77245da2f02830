# Unit tests of keyclient/policy*.c (picked up by tests/unit/CMakeLists.txt,
# which includes every *.cmake fragment here):
#   test_policy - key-policy validation and evaluation (principals, actions,
#                 resources, every condition operator and key), the default
#                 key policy, grant operations and grant constraints
add_executable(test_policy ${CMAKE_CURRENT_LIST_DIR}/test_policy.c)
target_link_libraries(test_policy PRIVATE kmsfs_keyclient)
add_test(NAME policy COMMAND test_policy)
