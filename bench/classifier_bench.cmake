# Crash classifier: classify a 64 KiB loader log (target: well under 1 ms).
#   cmake --build <build> --target classifier_bench && <build>/bin/classifier_bench
if(TARGET mw_classifier)
  add_executable(classifier_bench ${CMAKE_CURRENT_LIST_DIR}/classifier_bench.cpp)
  target_link_libraries(classifier_bench PRIVATE mw_classifier benchmark::benchmark mw_warnings)
endif()
