# Third-party libraries, all from Debian 12 packages (scripts/bootstrap installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(tomlplusplus REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)  # the PostgreSQL registry backend
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
