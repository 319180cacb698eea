# `modelwarden classify` (issue 3): a small library main() links.
# Included from cli/CMakeLists.txt; needs mw_classifier from compat/.
if(NOT TARGET mw_classifier)
  return()
endif()
add_library(mw_cli_classify STATIC ${CMAKE_CURRENT_LIST_DIR}/classify_command.cpp)
target_include_directories(mw_cli_classify PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(mw_cli_classify PUBLIC mw_classifier PRIVATE mw_loadconfig nlohmann_json::nlohmann_json mw_warnings)
mw_add_test(classify_command_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/classify_command_test.cpp
  LIBS mw_cli_classify nlohmann_json::nlohmann_json)
