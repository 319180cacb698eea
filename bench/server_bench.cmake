# Server benchmarks (issue 7): `make bench` -> scripts/run-bench, which runs
# bench/serve_bench.mjs against the real binaries and prints one table.
# mw-bench-crash is the `command` loader that crashes at a recorded instant
# (crash-to-durable). The driver itself is Node (already a dependency of the
# browser tests), so nothing here links the server.
add_executable(mw-bench-crash ${CMAKE_CURRENT_LIST_DIR}/crash_engine.cpp)
target_link_libraries(mw-bench-crash PRIVATE mw_warnings)
