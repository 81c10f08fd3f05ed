#include "network_helpers/tokenizer/decoder.h"

#include <optional>

#include "framework/error.h"
#include "network_helpers/tokenizer/byte_level.h"
#include "network_helpers/tokenizer/regex.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq::tok {

namespace {

// Maps the byte-level characters of each run of ordinary tokens back to bytes and decodes the run
// as UTF-8 (a character split across tokens is whole again). A token holding a character outside
// the mapping contributes its UTF-8 bytes unchanged, as in Hugging Face.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<DecodePiece>& pieces) const override {
    std::vector<DecodePiece> out;
    std::string run;
    bool in_run = false;
    const auto flush = [&] {
      if (in_run) out.push_back({to_valid_utf8(run), false});
      run.clear();
      in_run = false;
    };
    for (auto& piece : pieces) {
      if (piece.added) {
        flush();
        out.push_back(std::move(piece));
        continue;
      }
      run += byte_level_to_bytes(piece.text);
      in_run = true;
    }
    flush();
    pieces = std::move(out);
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<DecodePiece>& pieces) const override {
    for (auto& piece : pieces) piece.text = pattern_.replace_all(piece.text, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// Runs of "<0xNN>" tokens become the bytes they stand for; a run that is not valid UTF-8 becomes
// one U+FFFD per byte (Hugging Face's ByteFallback).
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<DecodePiece>& pieces) const override {
    std::vector<DecodePiece> out;
    std::string bytes;
    const auto flush = [&] {
      if (bytes.empty()) return;
      if (is_valid_utf8(bytes)) {
        out.push_back({bytes, false});
      } else {
        for (size_t i = 0; i < bytes.size(); ++i) out.push_back({"\xEF\xBF\xBD", false});
      }
      bytes.clear();
    };
    for (auto& piece : pieces) {
      if (auto byte = parse_byte_token(piece.text)) {
        bytes.push_back(static_cast<char>(*byte));
      } else {
        flush();
        out.push_back(std::move(piece));
      }
    }
    flush();
    pieces = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<DecodePiece>& pieces) const override {
    std::string joined;
    for (const auto& piece : pieces) joined += piece.text;
    pieces.assign(1, DecodePiece{std::move(joined), false});
  }
};

// Removes up to `start` leading and `stop` trailing copies of the character `content` from each
// token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<DecodePiece>& pieces) const override {
    const size_t n = content_.size();
    for (auto& piece : pieces) {
      std::string& text = piece.text;
      size_t begin = 0, end = text.size();
      for (size_t i = 0; i < start_ && end - begin >= n && text.compare(begin, n, content_) == 0;
           ++i) {
        begin += n;
      }
      for (size_t i = 0; i < stop_ && end - begin >= n && text.compare(end - n, n, content_) == 0;
           ++i) {
        end -= n;
      }
      text = text.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

// Replacement characters become spaces; in the first token they are dropped (the prefix that the
// Metaspace pre-tokenizer added), unless the prepend scheme is "never".
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_in_first)
      : replacement_(Pattern::literal(std::move(replacement))), drop_in_first_(drop_in_first) {}
  void decode_chain(std::vector<DecodePiece>& pieces) const override {
    for (size_t i = 0; i < pieces.size(); ++i) {
      pieces[i].text =
          replacement_.replace_all(pieces[i].text, i == 0 && drop_in_first_ ? "" : " ");
    }
  }

 private:
  Pattern replacement_;
  bool drop_in_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void decode_chain(std::vector<DecodePiece>& pieces) const override {
    for (const auto& step : steps_) step->decode_chain(pieces);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

size_t count_or(const Json& config, std::string_view key, const JsonPath& where) {
  const Json* value = find_key(config, key);
  if (!value) return 0;
  if (!value->is_number_unsigned()) (where / key).fail_expected("a count >= 0", *value);
  return value->get<size_t>();
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Json& config, const JsonPath& where) {
  if (config.is_null()) return nullptr;
  const std::string type = require_string(config, "type", where);
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "Replace") {
    const Json& pattern =
        require_key(config, "pattern", where, R"({"String": ..} or {"Regex": ..})");
    return std::make_unique<ReplaceDecoder>(pattern_from_json(pattern, where / "pattern"),
                                            require_string(config, "content", where));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(require_string(config, "content", where),
                                          count_or(config, "start", where),
                                          count_or(config, "stop", where));
  }
  if (type == "Metaspace") {
    bool drop = bool_or(config, "add_prefix_space", true, where);
    if (const Json* scheme = find_key(config, "prepend_scheme")) drop = *scheme != "never";
    return std::make_unique<MetaspaceDecoder>(
        string_or(config, "replacement", "\xE2\x96\x81", where), drop);
  }
  if (type == "Sequence") {
    const Json& list = require_key(config, "decoders", where, "a list of decoders");
    if (!list.is_array()) (where / "decoders").fail_expected("a list of decoders", list);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto step = make_decoder(list[i], (where / "decoders")[i]))
        steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  (where / "type")
      .fail(fmt::format("unsupported decoder type '{}' (ptq supports ByteLevel, Replace, "
                        "ByteFallback, Fuse, Strip, Metaspace, Sequence)",
                        type));
}

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

}  // namespace ptq::tok
