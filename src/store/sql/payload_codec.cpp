// zstd (Debian's libzstd) with a built-in dictionary rather than a format of our own: a rendering
// is short (~1 KB), so most of what it shares with others is its field names and shapes, which
// only a dictionary lets a compressor reuse. zstd level 1 with it packs the bench's renderings
// (949 B) to 358 B in ~3.7 µs and unpacks them in ~1.6 µs; zlib level 1: 468 B, ~7.5 and ~3.5 µs.
// Packing runs on the SQLite writer thread; a claim's unpacking runs after its commit, on the
// store's callback thread (ClaimDueAsStored; docs/PERFORMANCE.md).
// zlib is kept to read older values.
#include "store/sql/payload_codec.h"

#include <zlib.h>
#include <zstd.h>

namespace outbound::store::sql {
namespace {

constexpr unsigned char kZlibFirstByte = 0x78;  // deflate, 32 KB window: every zlib header here
constexpr unsigned char kZstdDictionary1 = 0x01;

// Dictionary 1: one rendering of each shape of CONTRACT.md §3's `data`, fields in RenderData's
// order, values left empty (they are the tenant's); the customer context most renderings end with
// comes last, where zstd's offsets into it are shortest. Never edit it: values stored with it
// would no longer unpack. A better one is dictionary 2, with a first byte of its own.
constexpr std::string_view kDictionary1 =
    R"({"targetId":null,"externalId":null,"sourceSystem":"","errors":[{"field":"","code":"",)"
    R"("message":""}],"status":"Rejected"})"
    R"({"targetId":1,"externalId":null,"sourceSystem":"","changedFields":["title"],)"
    R"("status":"Imported"})"
    R"({"targetId":1,"externalId":"","sourceSystem":"","reason":"","status":"Cancelled"})"
    R"({"targetId":1,"externalId":"","sourceSystem":"","appointmentId":1,"visitReportId":1,)"
    R"("billingEventId":1,"status":"BillingTriggered","billing":{"amount":"","currency":"EUR",)"
    R"("lines":[{"description":"","quantity":1,"unitPrice":""}]}})"
    R"({"appointmentId":1,"visitReportId":1,"followUpReason":"","status":"FollowUpRequired",)"
    R"("summaryPreview":""})"
    R"({"appointmentId":1,"visitReportId":1,"status":"ReportApproved","summaryPreview":""})"
    R"({"appointmentId":1,"routeId":1,"sequence":1,"plannedArrivalUtc":"2026-01-01T00:00:00Z",)"
    R"("status":"RouteSuggested"}{"status":"RoutePublished"})"
    R"({"appointmentId":1,"scheduledStartUtc":"2026-01-01T00:00:00Z",)"
    R"("scheduledEndUtc":"2026-01-01T00:00:00Z","status":"Scheduled"})"
    R"({"appointmentId":1,"completedAtUtc":"2026-01-01T00:00:00Z","status":"Completed"})"
    R"({"appointmentId":1,"startedAtUtc":"2026-01-01T00:00:00Z","status":"Started"})"
    R"({"targetId":1,"externalId":"","sourceSystem":"","appointmentId":1,)"
    R"("problem":{"code":"","description":""},"status":"ProblemReported",)"
    R"("customerContext":{"customer":{"ordinavoCustomerId":1,"externalId":"","customerNumber":"",)"
    R"("name":""},"location":{"ordinavoLocationId":1,"externalId":"","name":""},)"
    R"("contact":{"ordinavoContactId":1,"externalId":"","displayName":"","phone":"+","email":""}}})";

// Level 1: negative levels pack ~1.7 µs faster but keep ~65 B more per rendering.
constexpr int kZstdLevel = 1;

// The digested dictionary, made once and shared: zstd only reads it while packing/unpacking.
// (A raw-content dictionary: the bytes do not start with zstd's dictionary magic.)
const ZSTD_CDict* PackDictionary() {
  static const ZSTD_CDict* const d =
      ZSTD_createCDict(kDictionary1.data(), kDictionary1.size(), kZstdLevel);
  return d;
}

const ZSTD_DDict* UnpackDictionary() {
  static const ZSTD_DDict* const d = ZSTD_createDDict(kDictionary1.data(), kDictionary1.size());
  return d;
}

// One context per thread that packs (the writer) or unpacks, made on first use with its
// parameters and dictionary, which every frame keeps: setting one up allocates far more than a
// payload costs.
struct Packer {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  // The checksum (4 bytes) makes a damaged value an error rather than different text.
  bool ok = c != nullptr && PackDictionary() != nullptr &&
            !ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) &&
            !ZSTD_isError(ZSTD_CCtx_refCDict(c, PackDictionary()));
  Packer() = default;
  ~Packer() { ZSTD_freeCCtx(c); }
  Packer(const Packer&) = delete;
  Packer& operator=(const Packer&) = delete;
};

struct Unpacker {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  bool ok = d != nullptr && UnpackDictionary() != nullptr &&
            !ZSTD_isError(ZSTD_DCtx_refDDict(d, UnpackDictionary()));
  Unpacker() = default;
  ~Unpacker() { ZSTD_freeDCtx(d); }
  Unpacker(const Unpacker&) = delete;
  Unpacker& operator=(const Unpacker&) = delete;
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

std::optional<std::string> Inflate(std::string_view stored) {
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

std::optional<std::string> UnpackZstd(std::string_view frame) {
  thread_local Unpacker unpacker;
  if (!unpacker.ok) return std::nullopt;
  // PackPayload always writes the text's length in the frame. A damaged header could claim any
  // length: a real frame's blocks take at least 4 bytes each and hold at most 128 KB.
  const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ||
      size > (frame.size() / 4 + 1) * ZSTD_BLOCKSIZE_MAX) {
    return std::nullopt;
  }
  std::string out(static_cast<std::size_t>(size), '\0');
  const std::size_t n =
      ZSTD_decompressDCtx(unpacker.d, out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != out.size()) return std::nullopt;
  return out;
}

}  // namespace

std::optional<std::string> PackPayload(std::string_view text) {
  thread_local Packer packer;
  if (!packer.ok || text.size() < 64) return std::nullopt;
  std::string out(text.size(), '\0');  // only worth keeping if shorter than the text
  out[0] = static_cast<char>(kZstdDictionary1);
  const std::size_t n =
      ZSTD_compress2(packer.c, out.data() + 1, out.size() - 1, text.data(), text.size());
  if (ZSTD_isError(n)) return std::nullopt;  // it did not fit: not smaller
  out.resize(1 + n);
  return out;
}

bool IsPackedPayload(std::string_view stored) {
  if (stored.empty()) return false;
  const auto first = static_cast<unsigned char>(stored.front());
  return first == kZstdDictionary1 || first == kZlibFirstByte;
}

std::optional<std::string> UnpackPayload(std::string_view stored) {
  if (!IsPackedPayload(stored)) return std::string(stored);
  if (static_cast<unsigned char>(stored.front()) == kZlibFirstByte) return Inflate(stored);
  return UnpackZstd(stored.substr(1));
}

}  // namespace outbound::store::sql
