# `make package`: a Debian package built with CPack (SPEC §13).
#
# Layout (everything under /usr/lib/modelwarden keeps the build's relative
# layout, so the programs find each other and the tokenizer as they do in build/):
#   /usr/bin/modelwarden                     -> ../lib/modelwarden/bin/modelwarden
#   /usr/lib/modelwarden/bin/                modelwarden, modelwarden-worker, mw-keeper
#   /usr/lib/modelwarden/lib/                the llama.cpp/ggml libraries of MW_LLAMA_DIR and the GPU
#                                            backend plugins of MW_GGML_GPU_DIR (bundled:
#                                            the worker's RPATH is $ORIGIN/../lib, and it loads the
#                                            ggml backend plugins from there)
#   /usr/lib/modelwarden/share/modelwarden/  make-test-model's tokenizer
#   /lib/systemd/system/modelwarden.service  the hardened unit (packaging/modelwarden.service)
#   /etc/modelwarden/config.toml             default configuration (a conffile)
#   /usr/share/modelwarden/crash_patterns.toml  the crash catalog (also built into the binary)
#   /usr/share/doc/modelwarden/              README, docs
# Build with your own llama.cpp (CUDA, ROCm...) via LLAMA_DIR and its libraries are the ones bundled.
set(_mw_pkg_root "usr/lib/modelwarden")

install(TARGETS modelwarden modelwarden-worker mw-keeper RUNTIME DESTINATION ${_mw_pkg_root}/bin)
set_target_properties(modelwarden-worker PROPERTIES INSTALL_RPATH "$ORIGIN/../lib")
install(DIRECTORY ${MW_LLAMA_LIB_DIR}/ DESTINATION ${_mw_pkg_root}/lib
        FILES_MATCHING PATTERN "*.so" PATTERN "*.so.*")
# The GPU backend plugins (SPEC §15): Vulkan (the package then depends on
# libvulkan1), and CUDA where the build machine has the NVIDIA driver
# (dpkg-shlibdeps must resolve the plugin's libcuda.so.1: without the driver
# the package carries Vulkan only). The worker loads them from lib/ like the CPU ones.
if(EXISTS "${MW_GGML_GPU_DIR}")
  find_library(MW_LIBCUDA_DRIVER NAMES libcuda.so.1 cuda)
  set(_mw_gpu_exclude)
  if(NOT MW_LIBCUDA_DRIVER)
    set(_mw_gpu_exclude PATTERN "libggml-cuda.so" EXCLUDE)
  endif()
  install(DIRECTORY ${MW_GGML_GPU_DIR}/ DESTINATION ${_mw_pkg_root}/lib
          FILES_MATCHING PATTERN "libggml-*.so" ${_mw_gpu_exclude})
endif()
# llama.cpp's own server code (scripts/build-llama-serverlib), which the
# worker links to serve a loaded model (SPEC §10).
if(MW_LLAMA_SERVER_LIB_DIR)
  install(DIRECTORY ${MW_LLAMA_SERVER_LIB_DIR}/ DESTINATION ${_mw_pkg_root}/lib
          FILES_MATCHING PATTERN "*.so" PATTERN "*.so.*")
endif()
install(FILES ${MW_TEST_VOCAB} DESTINATION ${_mw_pkg_root}/share/modelwarden)
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/packaging)
file(CREATE_LINK ../lib/modelwarden/bin/modelwarden ${CMAKE_BINARY_DIR}/packaging/modelwarden SYMBOLIC)
install(FILES ${CMAKE_BINARY_DIR}/packaging/modelwarden DESTINATION usr/bin)
install(FILES packaging/modelwarden.service DESTINATION lib/systemd/system)
install(FILES packaging/config.toml DESTINATION etc/modelwarden)
install(FILES data/crash_patterns.toml DESTINATION usr/share/modelwarden)
install(FILES README.md DESTINATION usr/share/doc/modelwarden)
install(DIRECTORY docs/ DESTINATION usr/share/doc/modelwarden FILES_MATCHING PATTERN "*.md")

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "modelwarden")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "modelwarden maintainers <modelwarden@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local LLM model server that learns which models work on this machine")
set(CPACK_PACKAGE_DESCRIPTION "Keeps a registry of models, loads each in a supervised worker process,
classifies load crashes and refuses known-bad models. Runs as a systemd service
(Type=notify) with Prometheus metrics at /metrics.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # modelwarden_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SECTION "misc")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The bundled llama.cpp libraries satisfy the worker's own dependencies.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS "${MW_LLAMA_LIB_DIR}")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_SOURCE_DIR}/packaging/conffiles;${CMAKE_SOURCE_DIR}/packaging/postinst;${CMAKE_SOURCE_DIR}/packaging/prerm;${CMAKE_SOURCE_DIR}/packaging/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE "gzip")  # fast to build (the llama.cpp libraries are most of it)
include(CPack)
