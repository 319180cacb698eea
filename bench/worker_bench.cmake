# Worker benchmarks. bare-llama-load: the baseline of the load-overhead
# benchmark (issue 7): a plain llama.cpp program that loads a GGUF with the
# same defaults as modelwarden-worker and prints how long model + context took.
# It links llama.cpp on purpose (it is the "without modelwarden" side).
add_executable(bare-llama-load ${CMAKE_CURRENT_LIST_DIR}/bare_llama_load.cpp)
target_link_libraries(bare-llama-load PRIVATE mw::llama mw_warnings)
set_target_properties(bare-llama-load PROPERTIES BUILD_RPATH "${MW_LLAMA_LIB_DIR}")
