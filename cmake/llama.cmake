# llama.cpp is found through ONE variable and exposed as ONE target:
#
#   MW_LLAMA_DIR  a prefix holding include/llama.h (+ ggml headers) and
#                 lib/libllama.so + lib/libggml*.so (+ backend plugins).
#   mw::llama     the imported target; only modelwarden-worker links it.
#
# Default: the prebuilt CPU build that scripts/bootstrap installs into the
# user cache. To use your own llama.cpp build (CUDA, ROCm/HIP, Vulkan, SYCL):
#   cmake -S llama.cpp -B b -DGGML_CUDA=ON -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON
#   cmake --build b -j && cmake --install b --prefix $HOME/llama-cuda
#   make build LLAMA_DIR=$HOME/llama-cuda     (or cmake -DMW_LLAMA_DIR=...)
# The worker loads ggml backend plugins from MW_LLAMA_DIR/lib at run time
# (override with the environment variable MODELWARDEN_GGML_BACKEND_DIR).
if(NOT MW_LLAMA_DIR)
  execute_process(COMMAND ${CMAKE_SOURCE_DIR}/scripts/bootstrap --print-llama-dir
                  OUTPUT_VARIABLE _mw_default_llama OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(MW_LLAMA_DIR "${_mw_default_llama}" CACHE PATH "llama.cpp install prefix")
endif()

find_path(MW_LLAMA_INCLUDE_DIR llama.h PATHS ${MW_LLAMA_DIR}/include NO_DEFAULT_PATH REQUIRED)
find_library(MW_LLAMA_LIB NAMES llama PATHS ${MW_LLAMA_DIR}/lib ${MW_LLAMA_DIR}/lib64 NO_DEFAULT_PATH REQUIRED)
find_library(MW_GGML_LIB NAMES ggml PATHS ${MW_LLAMA_DIR}/lib ${MW_LLAMA_DIR}/lib64 NO_DEFAULT_PATH REQUIRED)
find_library(MW_GGML_BASE_LIB NAMES ggml-base PATHS ${MW_LLAMA_DIR}/lib ${MW_LLAMA_DIR}/lib64 NO_DEFAULT_PATH REQUIRED)
get_filename_component(MW_LLAMA_LIB_DIR ${MW_LLAMA_LIB} DIRECTORY)

add_library(mw_llama INTERFACE)
target_include_directories(mw_llama SYSTEM INTERFACE ${MW_LLAMA_INCLUDE_DIR})
target_link_libraries(mw_llama INTERFACE ${MW_LLAMA_LIB} ${MW_GGML_LIB} ${MW_GGML_BASE_LIB})
target_compile_definitions(mw_llama INTERFACE MW_GGML_BACKEND_DIR="${MW_LLAMA_LIB_DIR}")
add_library(mw::llama ALIAS mw_llama)

# The tokenizer that make-test-model embeds (from the llama.cpp source tree).
set(MW_TEST_VOCAB "${MW_LLAMA_DIR}/share/ggml-vocab-llama-spm.gguf" CACHE FILEPATH
    "llama SPM tokenizer GGUF used by make-test-model")
message(STATUS "llama.cpp: ${MW_LLAMA_DIR} (lib ${MW_LLAMA_LIB})")
