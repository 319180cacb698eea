#include "api/route_guard.h"

#include "api/errors.h"
#include "api/json_codec.h"
#include "common/log.h"

namespace mw::api {

void AnswerRouteException(const httplib::Request& req, httplib::Response& res, const char* what) {
  MW_LOG(kError, "api") << req.method << " " << req.path << " threw "
                        << (what ? what : "a non-standard exception");
  ErrorInfo info = DescribeError(ErrorKind::kInternal);
  res.status = info.http_status;
  res.set_content(ErrorToJson(info.code, "internal error while handling the request"),
                  "application/json; charset=utf-8");
}

}  // namespace mw::api
