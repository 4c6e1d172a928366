#include "wick/error.h"

namespace wick {

void raise(std::string_view where, std::string_view message) {
  std::string text;
  text.reserve(where.size() + message.size() + 3);
  text.append("[").append(where).append("] ").append(message);
  throw Error(text);
}

}  // namespace wick
