#include "stunt/core/error.h"

namespace stunt::detail {

void throw_internal_error(const char* condition, const char* file, int line,
                          const std::string& message) {
  throw InternalError(str("internal error: ", condition, " failed at ", file, ":", line,
                          message.empty() ? "" : ": ", message,
                          "; this is a bug in Stunt, please report it with the command you ran"));
}

}  // namespace stunt::detail
