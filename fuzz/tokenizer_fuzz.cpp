// libFuzzer entry for tokenizer.json: any input bytes, taken as the file's contents, must either load or
// raise wick::Error; a loaded tokenizer must then encode a fixed text and decode (also streaming) what it
// gave, again raising nothing but wick::Error. Any other exception, crash or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "wick/error.h"
#include "wick/io/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::string_view json(reinterpret_cast<const char*>(data), size);
    const wick::io::Tokenizer tokenizer = wick::io::Tokenizer::from_json(json, {}, "fuzz input");
    const wick::io::Encoding encoding = tokenizer.encode_pair(
        "Hello, world!  <|im_start|>x\n\t42 café 你好 👨‍👩‍👧 [CLS] ab", "second one");
    static_cast<void>(tokenizer.decode(encoding.ids));
    wick::io::StreamDecoder stream = tokenizer.decode_stream(true);
    std::string streamed;
    for (const int32_t id : encoding.ids) streamed += stream.step(id);
    streamed += stream.flush();
    if (tokenizer.decode(encoding.ids, true) != streamed) __builtin_trap();
  } catch (const wick::Error&) {
  }
  return 0;
}
