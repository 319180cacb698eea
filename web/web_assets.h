// The web page (web/index.html, its ES modules app.js, core.js, cards.js, ...; style.css), embedded into the
// program at build time so that the server works offline and from any
// working directory.
//
// Contract:
// - FindWebAsset(path) returns the asset served at `path` ("/" is the page
//   itself, "/index.html" too; "/app.js", "/style.css"), or nullptr when no
//   asset has that path. The query string must already be stripped.
// - The returned pointer and the string_views in it point into static,
//   read-only storage that lives as long as the program: never free them.
// - `body` is the exact bytes of the source file (not NUL-terminated as far
//   as the view goes; do not rely on a terminator).
// - `content_type` is a complete Content-Type header value, with charset.
// - Thread-safe: no state, no allocation.
#ifndef MODELWARDEN_WEB_WEB_ASSETS_H_
#define MODELWARDEN_WEB_WEB_ASSETS_H_

#include <cstddef>
#include <string_view>

namespace mw::web {

struct WebAsset {
  std::string_view path;          // e.g. "/app.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view body;
};

// See the contract above. nullptr when `path` names no asset.
[[nodiscard]] const WebAsset* FindWebAsset(std::string_view path);

// Every asset, for listing or tests; `count` receives the number.
[[nodiscard]] const WebAsset* AllWebAssets(std::size_t* count);

}  // namespace mw::web

#endif  // MODELWARDEN_WEB_WEB_ASSETS_H_
