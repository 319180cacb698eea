# Registry / state machine: startup cleanup of 100 000 models with 1 000 stuck
# in testing (target: well under 0.5 s).
#   cmake --build <build> --target registry_bench && <build>/bin/registry_bench
if(TARGET mw_compat AND TARGET mw_registry_testutil)
  add_executable(registry_bench ${CMAKE_CURRENT_LIST_DIR}/registry_bench.cpp)
  target_link_libraries(registry_bench PRIVATE mw_compat mw_registry_testutil benchmark::benchmark mw_warnings)
endif()
