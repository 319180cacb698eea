# llama.cpp is found through ONE variable and exposed as ONE target:
#
#   MW_LLAMA_DIR  a prefix holding include/llama.h (+ ggml headers) and
#                 lib/libllama.so + lib/libggml*.so (+ backend plugins).
#   mw::llama     the imported target; only modelwarden-worker links it.
#
# llama.cpp's own server code (tools/server: the engine that serves a loaded
# model's OpenAI API, SPEC §10) is built from the llama.cpp source tree against
# that prefix's libraries by scripts/build-llama-serverlib (~5 min, once,
# cached outside the clone; scripts/bootstrap runs it):
#
#   MW_LLAMA_SERVERLIB_DIR  holds lib/libmw-llama-server.so
#                           (default: <MW_LLAMA_DIR>-serverlib-r<recipe>, as
#                           scripts/build-llama-serverlib --print-dir says)
#   mw::llama_server        the imported target; only modelwarden-worker links it.
#
# Default: the prebuilt CPU build that scripts/bootstrap installs into the
# user cache. To use your own llama.cpp build (CUDA, ROCm/HIP, Vulkan, SYCL):
#   cmake -S llama.cpp -B b -DGGML_CUDA=ON -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON
#   cmake --build b -j && cmake --install b --prefix $HOME/llama-cuda
#   make build LLAMA_DIR=$HOME/llama-cuda     (or cmake -DMW_LLAMA_DIR=...)
# and its server code, from the same source tree (once):
#   MW_LLAMA_PREFIX=$HOME/llama-cuda MW_LLAMA_SRC=llama.cpp scripts/build-llama-serverlib
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
# GPU backend plugins of the same release (SPEC §15; scripts/bootstrap puts
# them in <MW_LLAMA_DIR>-gpu/lib): loaded beside MW_LLAMA_DIR/lib's, bundled
# by `make package`. Absent (your own llama.cpp build): nothing more is loaded.
if(NOT MW_GGML_GPU_DIR)
  set(MW_GGML_GPU_DIR "${MW_LLAMA_DIR}-gpu/lib" CACHE PATH "ggml GPU backend plugins (scripts/bootstrap --print-gpu-dir)")
endif()
target_compile_definitions(mw_llama INTERFACE MW_GGML_BACKEND_DIR="${MW_LLAMA_LIB_DIR}"
                                              MW_GGML_GPU_BACKEND_DIR="${MW_GGML_GPU_DIR}")
add_library(mw::llama ALIAS mw_llama)

# The default directory is the script's (it names the recipe generation): a
# build directory configured for an older default moves to the current one.
execute_process(COMMAND ${CMAKE_COMMAND} -E env MW_LLAMA_PREFIX=${MW_LLAMA_DIR} --unset=MW_SERVERLIB_DIR
                        ${CMAKE_SOURCE_DIR}/scripts/build-llama-serverlib --print-dir
                OUTPUT_VARIABLE _mw_serverlib_default OUTPUT_STRIP_TRAILING_WHITESPACE)
if(MW_LLAMA_SERVERLIB_DIR)
  string(FIND "${MW_LLAMA_SERVERLIB_DIR}" "${MW_LLAMA_DIR}-serverlib" _mw_serverlib_pos)
endif()
if(NOT MW_LLAMA_SERVERLIB_DIR OR _mw_serverlib_pos EQUAL 0)
  set(MW_LLAMA_SERVERLIB_DIR "${_mw_serverlib_default}" CACHE PATH "llama.cpp server code built by scripts/build-llama-serverlib" FORCE)
endif()
if(NOT EXISTS "${MW_LLAMA_SERVERLIB_DIR}/lib/libmw-llama-server.so")
  # A configure without scripts/bootstrap first (cmake -S . -B build): build it now.
  execute_process(COMMAND ${CMAKE_COMMAND} -E env MW_LLAMA_PREFIX=${MW_LLAMA_DIR} MW_SERVERLIB_DIR=${MW_LLAMA_SERVERLIB_DIR}
                          ${CMAKE_SOURCE_DIR}/scripts/build-llama-serverlib RESULT_VARIABLE _mw_serverlib_rc)
  if(NOT _mw_serverlib_rc EQUAL 0)
    message(FATAL_ERROR "building llama.cpp's server code failed (scripts/build-llama-serverlib)")
  endif()
endif()
# Not find_library: its cached answer would outlive a change of directory.
set(MW_LLAMA_SERVER_LIB "${MW_LLAMA_SERVERLIB_DIR}/lib/libmw-llama-server.so")
set(MW_LLAMA_SERVER_LIB_DIR "${MW_LLAMA_SERVERLIB_DIR}/lib")
add_library(mw_llama_server INTERFACE)
target_link_libraries(mw_llama_server INTERFACE ${MW_LLAMA_SERVER_LIB} mw::llama)
add_library(mw::llama_server ALIAS mw_llama_server)

# The tokenizer that make-test-model embeds (from the llama.cpp source tree).
set(MW_TEST_VOCAB "${MW_LLAMA_DIR}/share/ggml-vocab-llama-spm.gguf" CACHE FILEPATH
    "llama SPM tokenizer GGUF used by make-test-model")
message(STATUS "llama.cpp: ${MW_LLAMA_DIR} (lib ${MW_LLAMA_LIB}; server code ${MW_LLAMA_SERVER_LIB})")
