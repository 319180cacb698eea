# Crash classifier + pattern catalog (issue 3): pure logic, its own small
# library so that the CLI's `classify` command and the server can link it
# without the rest of compat. Included from compat/CMakeLists.txt.
set(_mw_catalog_toml ${CMAKE_SOURCE_DIR}/data/crash_patterns.toml)
set(_mw_catalog_cpp ${CMAKE_CURRENT_BINARY_DIR}/builtin_crash_catalog.cpp)
add_custom_command(
  OUTPUT ${_mw_catalog_cpp}
  COMMAND ${CMAKE_COMMAND} -DINPUT=${_mw_catalog_toml} -DOUTPUT=${_mw_catalog_cpp}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/embed_crash_catalog.cmake
  DEPENDS ${_mw_catalog_toml} ${CMAKE_CURRENT_SOURCE_DIR}/embed_crash_catalog.cmake
  COMMENT "Embedding the built-in crash pattern catalog")

add_library(mw_classifier STATIC crash_catalog.cpp crash_classifier.cpp crash_classifier_text.cpp ${_mw_catalog_cpp})
target_include_directories(mw_classifier PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(mw_classifier PUBLIC mw_common
  PRIVATE PkgConfig::RE2 tomlplusplus::tomlplusplus mw_warnings)

mw_add_test(crash_classifier_test SOURCES crash_classifier_test.cpp LIBS mw_classifier)
mw_add_test(crash_corpus_test SOURCES crash_corpus_test.cpp LIBS mw_classifier nlohmann_json::nlohmann_json)
if(TARGET crash_corpus_test)
  # The corpus is project data (tests/data/crashlogs); nothing outside the clone is read.
  target_compile_definitions(crash_corpus_test PRIVATE
    MW_CRASH_CORPUS="${CMAKE_SOURCE_DIR}/tests/data/crashlogs/public.jsonl")
endif()
