// How a stored rendering (payloads.data_json) is kept on SQLite: compressed when that makes it
// smaller (issue 8, bytes per waiting delivery and the writer's CPU per rendering). Lossless:
// what is read back is the rendered text byte for byte (CONTRACT.md §10).
//
// A stored value is one of (its first byte says which; no JSON text starts with any of these
// bytes):
// - the text itself (a short rendering, or any rendering on PostgreSQL);
// - 0x02 then a zstd frame made with built-in dictionary 2 (dictionary 1's text with the entropy
//   tables of the catalog's example renderings), written since SQLite migration 14;
// - 0x01 then a zstd frame made with built-in dictionary 1 (the field names and shapes of §3's
//   `data`), written by builds of SQLite migrations 10 to 13: still read;
// - a zlib stream (first byte 0x78), written by builds of SQLite migration 9: still read.
// A new dictionary gets a new first byte and leaves the old one readable.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace outbound::store::sql {

// The packed form of `text` (0x02 and a zstd frame with a checksum), or nullopt when it would not
// be shorter than `text` (small renderings stay text).
std::optional<std::string> PackPayload(std::string_view text);

// The rendered text of a stored value: `stored` itself unless it is packed (either form above).
// A packed value (any packed form above) that does not unpack, or fails its checksum (a damaged
// database), is an error.
bool IsPackedPayload(std::string_view stored);
std::optional<std::string> UnpackPayload(std::string_view stored);

// Renderings packed on a helper thread while the caller goes on (issue 8: a batch's writer packs
// its renderings while its events go in, instead of after). The texts are copied, so the caller's
// may go away. Take() packs, on the caller's thread, every text the helper has not finished, so
// the caller never waits for the helper, and gets what PackPayload gives for each text (or the
// text kept as it is, nullopt, where the helper could not allocate), whether or not the helper
// ever ran. One helper thread for the process, started on first use (if it cannot be started,
// Take() packs everything); a PackAhead destroyed before Take() lets the helper stop after the
// text it is on. Thread-safety: one PackAhead is used by one thread; Take() once.
class PackAhead {
 public:
  explicit PackAhead(std::vector<std::string> texts);
  ~PackAhead();
  PackAhead(const PackAhead&) = delete;
  PackAhead& operator=(const PackAhead&) = delete;

  const std::vector<std::string>& texts() const;
  // PackPayload(texts()[i]) for each i. Once.
  std::vector<std::optional<std::string>> Take();

  struct Job;  // shared with the helper thread

 private:
  std::shared_ptr<Job> job_;
};

// For tests: the dictionaries' bytes, and `text` packed as builds of SQLite migrations 10 to 13
// stored it (0x01 and a zstd frame with dictionary 1).
std::string DictionaryOneForTests();
std::string DictionaryTwoForTests();
std::optional<std::string> PackWithDictionaryOneForTests(std::string_view text);
// The zstd level dictionary 2 packs at: -3 with the libzstd the build was made against, else 1.
int DictionaryTwoLevelForTests();

}  // namespace outbound::store::sql
