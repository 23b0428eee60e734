#pragma once
// GPT-2's byte-to-unicode table: each byte becomes a printable character, so that BPE works on
// text without spaces or control characters (printable Latin-1 bytes map to themselves, the
// rest to U+0100 upwards, in byte order).

#include <optional>
#include <string>
#include <string_view>

namespace stunt::io::tokenizer_detail {

/// The UTF-8 of the character that stands for byte b.
const std::string& byte_to_unicode(unsigned char b);
/// The byte a code point stands for, or nothing when it is not in the table.
std::optional<unsigned char> unicode_to_byte(uint32_t cp);

}  // namespace stunt::io::tokenizer_detail
