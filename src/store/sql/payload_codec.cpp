// zlib (Debian's zlib1g, already linked by libcurl) rather than a format of our own: the zlib
// header doubles as the marker of a packed value and its Adler-32 checks what is read back.
#include "store/sql/payload_codec.h"

#include <zlib.h>

namespace outbound::store::sql {
namespace {

constexpr unsigned char kZlibFirstByte = 0x78;  // deflate, 32 KB window: every zlib header here

// One deflate stream per thread that packs (the writer) and one inflate stream per thread that
// unpacks, each made on first use and reset per value: setting one up allocates up to ~270 KB,
// far more than a payload costs.
struct Deflater {
  z_stream z{};
  // Level 1: the renderings compress to within 1 % of level 6 at a fraction of the CPU.
  bool ok = deflateInit(&z, 1) == Z_OK;
  Deflater() = default;
  ~Deflater() {
    if (ok) deflateEnd(&z);
  }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
};

struct Inflater {
  z_stream z{};
  bool ok = inflateInit(&z) == Z_OK;
  Inflater() = default;
  ~Inflater() {
    if (ok) inflateEnd(&z);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
};

Bytef* In(std::string_view s) {
  // zlib's next_in is not const-qualified; it never writes through it.
  return reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));  // NOLINT
}

}  // namespace

std::optional<std::string> PackPayload(std::string_view text) {
  thread_local Deflater deflater;
  if (!deflater.ok || text.size() < 64 || text.size() > 0x7fffffffU) return std::nullopt;
  z_stream& z = deflater.z;
  if (deflateReset(&z) != Z_OK) return std::nullopt;
  std::string out(text.size(), '\0');  // only worth keeping if shorter than the text
  z.next_in = In(text);
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) return std::nullopt;  // it did not fit: not smaller
  out.resize(z.total_out);
  return out;
}

bool IsPackedPayload(std::string_view stored) {
  return !stored.empty() && static_cast<unsigned char>(stored.front()) == kZlibFirstByte;
}

std::optional<std::string> UnpackPayload(std::string_view stored) {
  if (!IsPackedPayload(stored)) return std::string(stored);
  thread_local Inflater inflater;
  if (!inflater.ok) return std::nullopt;
  z_stream& z = inflater.z;
  if (inflateReset(&z) != Z_OK) return std::nullopt;
  std::string out;
  out.resize(stored.size() * 4);
  z.next_in = In(stored);
  z.avail_in = static_cast<uInt>(stored.size());
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(out.data() + z.total_out);
    z.avail_out = static_cast<uInt>(out.size() - z.total_out);
    const int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return std::nullopt;
    if (z.avail_out != 0) return std::nullopt;  // no progress left to make: truncated
    out.resize(out.size() * 2);
  }
  out.resize(z.total_out);
  return out;
}

}  // namespace outbound::store::sql
