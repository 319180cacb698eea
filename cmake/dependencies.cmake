# Third-party libraries: Debian 12 packages (scripts/bootstrap installs them),
# and cpp-httplib from the llama.cpp cache (below).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(tomlplusplus REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)  # the PostgreSQL registry backend

# cpp-httplib 0.54.1: the copy vendored by the pinned llama.cpp release (the
# library its engine uses), read from the bootstrap cache, never copied into
# the repository. Debian 12's 0.11.4 caps neither the request line nor header
# sizes or counts (SPEC §20). Built once as a static library with OUR caps;
# the definitions are PUBLIC so every user of httplib.h sees the same values.
# Only api/ links it (mw_httplib).
if(NOT MW_HTTPLIB_DIR)
  execute_process(COMMAND ${CMAKE_SOURCE_DIR}/scripts/bootstrap --print-llama-dir
                  OUTPUT_VARIABLE _mw_httplib_cache OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(MW_HTTPLIB_DIR "${_mw_httplib_cache}/src/vendor/cpp-httplib" CACHE PATH "cpp-httplib 0.54.1 (httplib.h + httplib.cpp)")
endif()
if(NOT EXISTS "${MW_HTTPLIB_DIR}/httplib.cpp")
  message(FATAL_ERROR "cpp-httplib not found in ${MW_HTTPLIB_DIR}: run scripts/bootstrap")
endif()
file(STRINGS "${MW_HTTPLIB_DIR}/httplib.h" _mw_httplib_version REGEX "^#define CPPHTTPLIB_VERSION \"")
if(NOT _mw_httplib_version MATCHES "\"0\\.54\\.1\"")
  message(FATAL_ERROR "expected cpp-httplib 0.54.1 in ${MW_HTTPLIB_DIR}, found: ${_mw_httplib_version}")
endif()
add_library(mw_httplib STATIC "${MW_HTTPLIB_DIR}/httplib.cpp")
target_include_directories(mw_httplib SYSTEM PUBLIC "${MW_HTTPLIB_DIR}")
target_compile_options(mw_httplib PRIVATE -w)  # third-party code
target_link_libraries(mw_httplib PUBLIC Threads::Threads)
# The caps (docs/security.md). A line longer than MAX_LINE_LENGTH is never
# held: the request line closes the connection, a header line gets 400.
target_compile_definitions(mw_httplib PUBLIC
  CPPHTTPLIB_MAX_LINE_LENGTH=16384         # bytes read for one line before giving up
  CPPHTTPLIB_REQUEST_URI_MAX_LENGTH=8192   # longer targets: 414
  CPPHTTPLIB_HEADER_MAX_LENGTH=8192        # one header line; longer: 400
  CPPHTTPLIB_HEADER_MAX_COUNT=64           # more header lines: 400
  CPPHTTPLIB_LISTEN_BACKLOG=4096           # the kernel clamps it to net.core.somaxconn
  CPPHTTPLIB_KEEPALIVE_MAX_COUNT=100       # requests per connection
  CPPHTTPLIB_KEEPALIVE_TIMEOUT_SECOND=5)   # idle time between them
