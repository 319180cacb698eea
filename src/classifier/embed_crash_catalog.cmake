# cmake -DINPUT=<toml> -DOUTPUT=<cpp> -P embed_crash_catalog.cmake
# Writes a .cpp defining mw::internal::kBuiltinCrashCatalog with the bytes of
# INPUT, so the program carries its built-in catalog and works from anywhere.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
"// Generated from data/crash_patterns.toml by embed_crash_catalog.cmake. Do not edit.\n"
"#include <string_view>\n"
"namespace mw::internal {\n"
"namespace {\n"
"constexpr unsigned char kBytes[] = {\n${bytes}0x00};\n"
"}  // namespace\n"
"extern const std::string_view kBuiltinCrashCatalog(reinterpret_cast<const char*>(kBytes), sizeof(kBytes) - 1);\n"
"}  // namespace mw::internal\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
