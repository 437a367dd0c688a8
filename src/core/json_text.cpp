#include "core/json_text.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/object.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/render.h"

namespace outbound::core {
namespace {

namespace json = boost::json;
using boost::system::error_code;

// The key of RawJson's wrapper: 0xFF never occurs in UTF-8, and boost::json::parse refuses
// invalid UTF-8, so no parsed key equals it.
constexpr std::string_view kRawKey =
    "\xff"
    "raw-json";

// A basic_parser handler that writes the value at `path` compactly while the parser walks the
// whole text, keeping each number's text as the parser saw it (on_number_part gives the pieces
// of a number split across buffers, on_int64/on_uint64/on_double the last piece).
class Extractor {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  explicit Extractor(std::initializer_list<std::string_view> path) : path_(path) {}

  std::optional<std::string>& result() { return result_; }

  bool on_document_begin(error_code& /*ec*/) { return true; }
  bool on_document_end(error_code& /*ec*/) { return true; }
  bool on_array_begin(error_code& /*ec*/) { return Open(false); }
  bool on_array_end(std::size_t /*n*/, error_code& /*ec*/) { return Close(']'); }
  bool on_object_begin(error_code& /*ec*/) { return Open(true); }
  bool on_object_end(std::size_t /*n*/, error_code& /*ec*/) { return Close('}'); }
  bool on_string_part(std::string_view s, std::size_t /*n*/, error_code& /*ec*/) {
    text_.append(s);
    return true;
  }
  bool on_string(std::string_view s, std::size_t /*n*/, error_code& /*ec*/) {
    text_.append(s);
    return Scalar(true);
  }
  bool on_key_part(std::string_view s, std::size_t /*n*/, error_code& /*ec*/) {
    text_.append(s);
    return true;
  }
  bool on_key(std::string_view s, std::size_t /*n*/, error_code& /*ec*/) {
    text_.append(s);
    return Key();
  }
  bool on_number_part(std::string_view s, error_code& /*ec*/) {
    text_.append(s);
    return true;
  }
  bool on_int64(std::int64_t /*i*/, std::string_view s, error_code& /*ec*/) {
    text_.append(s);
    return Scalar(false);
  }
  bool on_uint64(std::uint64_t /*u*/, std::string_view s, error_code& /*ec*/) {
    text_.append(s);
    return Scalar(false);
  }
  bool on_double(double /*d*/, std::string_view s, error_code& /*ec*/) {
    text_.append(s);
    return Scalar(false);
  }
  bool on_bool(bool b, error_code& /*ec*/) {
    text_ = b ? "true" : "false";
    return Scalar(false);
  }
  bool on_null(error_code& /*ec*/) {
    text_ = "null";
    return Scalar(false);
  }
  bool on_comment_part(std::string_view /*s*/, error_code& /*ec*/) { return true; }
  bool on_comment(std::string_view /*s*/, error_code& /*ec*/) { return true; }

 private:
  struct Level {
    bool object = false;
    bool on_path = false;      // this container is the value at path_[0 .. depth)
    bool key_matches = false;  // (object on the path) the current key is the path's next one
    std::size_t n = 0;         // members or elements written (while capturing)
  };

  // Called at the start of every value; returns whether the value is on the path (and not
  // yet the one captured).
  bool BeginValue() {
    if (capturing_) {
      Level& parent = stack_.back();
      if (!parent.object && parent.n++ > 0) out_.push_back(',');
      return false;
    }
    const bool on_path = stack_.empty() || (stack_.back().on_path && stack_.back().object &&
                                            stack_.back().key_matches);
    if (on_path && stack_.size() == path_.size()) {
      capturing_ = true;
      capture_depth_ = stack_.size();
      out_.clear();
      return false;
    }
    return on_path;
  }

  void EndValue() {
    if (capturing_ && stack_.size() == capture_depth_) {
      result_ = std::move(out_);  // a later duplicate key replaces it, as boost::json::parse does
      out_.clear();
      capturing_ = false;
    }
  }

  bool Open(bool object) {
    const bool on_path = BeginValue();
    if (capturing_) out_.push_back(object ? '{' : '[');
    stack_.push_back(Level{object, on_path, false, 0});
    return true;
  }

  bool Close(char c) {
    stack_.pop_back();
    if (capturing_) out_.push_back(c);
    EndValue();
    return true;
  }

  bool Key() {
    Level& top = stack_.back();
    if (capturing_) {
      if (top.n++ > 0) out_.push_back(',');
      AppendJsonString(out_, text_);
      out_.push_back(':');
    } else {
      top.key_matches = top.on_path && stack_.size() <= path_.size() &&
                        text_ == *(path_.begin() + (stack_.size() - 1));
    }
    text_.clear();
    return true;
  }

  bool Scalar(bool is_string) {
    BeginValue();
    if (capturing_) {
      if (is_string) {
        AppendJsonString(out_, text_);
      } else {
        out_ += text_;
      }
    }
    text_.clear();
    EndValue();
    return true;
  }

  std::initializer_list<std::string_view> path_;
  std::vector<Level> stack_;
  std::string text_;  // the string, key or number being read
  bool capturing_ = false;
  std::size_t capture_depth_ = 0;  // stack depth at the captured value
  std::string out_;
  std::optional<std::string> result_;
};

}  // namespace

std::optional<std::string> ExactJson(std::string_view json_text,
                                     std::initializer_list<std::string_view> path) {
  json::parse_options opts;
  opts.max_depth = 64;
  json::basic_parser<Extractor> parser(opts, path);
  error_code ec;
  const std::size_t n = parser.write_some(false, json_text.data(), json_text.size(), ec);
  if (ec || n != json_text.size() || !parser.done()) return std::nullopt;  // incl. extra data
  return std::move(parser.handler().result());
}

json::value RawJson(std::string_view json_text) {
  return json::object{{kRawKey, json::string(json_text)}};
}

const json::string* IfRawJson(const json::value& v) {
  const json::object* o = v.if_object();
  return o != nullptr ? IfRawJson(*o) : nullptr;
}

const json::string* IfRawJson(const json::object& o) {
  if (o.size() != 1 || o.begin()->key() != kRawKey) return nullptr;
  return o.begin()->value().if_string();
}

std::optional<std::int64_t> IntegralDouble(double d) {
  if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) >= 9.0e15) return std::nullopt;
  return static_cast<std::int64_t>(d);
}

}  // namespace outbound::core
