#include "network_helpers/tokenizer/hf_tokenizer_json.h"

#include <algorithm>

#include "framework/error.h"

namespace ptq {

namespace {
using tok::Json;
using tok::JsonPath;

std::vector<std::pair<std::string, std::string>> read_merges(const Json& list,
                                                             const JsonPath& where) {
  if (!list.is_array()) where.fail_expected("a list of merges", list);
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(list.size());
  constexpr const char* kExpected = R"(a merge "a b" or ["a", "b"])";
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& entry = list[i];
    if (entry.is_string()) {  // tokenizers < 0.20: "a b" (tokens never hold a plain space)
      const std::string& text = entry.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == text.size()) {
        where[i].fail_expected(kExpected, entry);
      }
      merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
               entry[1].is_string()) {  // tokenizers >= 0.20: ["a", "b"]
      merges.emplace_back(entry[0].get<std::string>(), entry[1].get<std::string>());
    } else {
      where[i].fail_expected(kExpected, entry);
    }
  }
  return merges;
}

std::unique_ptr<tok::BpeModel> read_bpe_model(const Json& model, const JsonPath& where) {
  if (!model.is_object()) where.fail_expected(R"(an object with "type": "BPE")", model);
  // Files written before "type" existed are recognised by their fields, as transformers does.
  std::string type = tok::string_or(model, "type", "", where);
  if (type.empty()) {
    if (!model.contains("merges")) {
      (where / "type").fail("missing, and the model has no merges: only BPE models are supported");
    }
    type = "BPE";
  }
  if (type != "BPE") {
    (where / "type")
        .fail(fmt::format("unsupported model type '{}' (ptq supports BPE; WordPiece and Unigram "
                          "tokenizers are not supported)",
                          type));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!tok::string_or(model, key, "", where).empty()) {
      (where / key).fail("a non-empty value is not supported");
    }
  }
  auto vocab = tok::read_vocab_json(
      tok::require_key(model, "vocab", where, "an object token -> id"), where / "vocab");
  const JsonPath merges_where = where / "merges";
  const auto merges =
      read_merges(tok::require_key(model, "merges", where, "a list of merges"), merges_where);

  tok::BpeOptions options;
  if (const Json* unk = tok::find_key(model, "unk_token")) {
    if (!unk->is_string()) (where / "unk_token").fail_expected("a string or null", *unk);
    options.unk_token = unk->get<std::string>();
  }
  options.fuse_unk = tok::bool_or(model, "fuse_unk", false, where);
  options.byte_fallback = tok::bool_or(model, "byte_fallback", false, where);
  options.ignore_merges = tok::bool_or(model, "ignore_merges", false, where);
  // "dropout" only matters for training; encoding is deterministic, as with dropout = null.
  return std::make_unique<tok::BpeModel>(
      std::move(vocab), merges, std::move(options), [&](size_t i) {
        const JsonPath entry = merges_where[i];
        return fmt::format("{}: key '{}'", entry.file().string(), entry.key());
      });
}

std::vector<tok::AddedToken> read_added_tokens(const Json& root, const JsonPath& where) {
  std::vector<tok::AddedToken> tokens;
  const Json* list = tok::find_key(root, "added_tokens");
  if (!list) return tokens;
  if (!list->is_array()) where.fail_expected("a list of added tokens", *list);
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& entry = (*list)[i];
    const JsonPath entry_where = where[i];
    tok::AddedToken token;
    token.id = tok::require_int(entry, "id", entry_where);
    // Ids index tables and are added to (vocab_size = id + 1): keep them in the model's id range.
    if (token.id < 0 || token.id >= (int64_t{1} << 31))
      (entry_where / "id").fail_expected("an id in [0, 2^31)", entry.at("id"));
    token.content = tok::require_string(entry, "content", entry_where);
    token.special = tok::bool_or(entry, "special", false, entry_where);
    token.lstrip = tok::bool_or(entry, "lstrip", false, entry_where);
    token.rstrip = tok::bool_or(entry, "rstrip", false, entry_where);
    token.single_word = tok::bool_or(entry, "single_word", false, entry_where);
    token.normalized = tok::bool_or(entry, "normalized", !token.special, entry_where);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// A token setting of tokenizer_config.json: "<s>", {"content": "<s>", ...} or null.
std::optional<std::string> config_token(const Json& config, const char* key,
                                        const JsonPath& where) {
  const Json* value = tok::find_key(config, key);
  if (!value) return std::nullopt;
  if (value->is_string()) return value->get<std::string>();
  if (value->is_object()) return tok::require_string(*value, "content", where / key);
  (where / key).fail_expected(R"(a token string, {"content": ..} or null)", *value);
}

// The id of a token named in tokenizer_config.json: an added token or a vocabulary entry.
std::optional<int64_t> find_token(const HfTokenizerParts& parts, const std::string& content) {
  for (const auto& token : parts.added_tokens) {
    if (token.content == content) return token.id;
  }
  return parts.model->token_id(content);
}

// Applies tokenizer_config.json to the parts read from tokenizer.json.
void apply_config(const Json& config, const JsonPath& where, HfTokenizerParts& parts) {
  const auto resolve = [&](const char* key) -> std::optional<int64_t> {
    const auto token = config_token(config, key, where);
    if (!token) return std::nullopt;
    const auto id = find_token(parts, *token);
    if (!id) (where / key).fail(fmt::format("token '{}' is not in the vocabulary", *token));
    return id;
  };
  if (auto bos = resolve("bos_token")) parts.bos_id = bos;
  if (auto eos = resolve("eos_token")) parts.eos_id = eos;

  // Legacy switches (LlamaTokenizer): make sure the BOS/EOS is added even when the post-processor
  // of tokenizer.json does not add it.
  auto& frame = parts.special_frame;
  if (tok::bool_or(config, "add_bos_token", false, where)) {
    if (!parts.bos_id) (where / "add_bos_token").fail("is true but there is no bos_token");
    if (std::find(frame.prefix.begin(), frame.prefix.end(), *parts.bos_id) == frame.prefix.end()) {
      frame.prefix.insert(frame.prefix.begin(), *parts.bos_id);
    }
  }
  if (tok::bool_or(config, "add_eos_token", false, where)) {
    if (!parts.eos_id) (where / "add_eos_token").fail("is true but there is no eos_token");
    if (std::find(frame.suffix.begin(), frame.suffix.end(), *parts.eos_id) == frame.suffix.end()) {
      frame.suffix.push_back(*parts.eos_id);
    }
  }
  parts.clean_up_tokenization_spaces =
      tok::bool_or(config, "clean_up_tokenization_spaces", false, where);

  if (const Json* extra = tok::find_key(config, "additional_special_tokens")) {
    if (!extra->is_array()) {
      (where / "additional_special_tokens").fail_expected("a list of tokens", *extra);
    }
    for (const Json& name : *extra) {
      const std::string content =
          name.is_object()
              ? tok::require_string(name, "content", where / "additional_special_tokens")
          : name.is_string() ? name.get<std::string>()
                             : "";
      for (auto& token : parts.added_tokens) token.special |= token.content == content;
    }
  }
}

std::string describe_kind(const HfTokenizerParts& parts, bool byte_fallback) {
  if (parts.pre_tokenizer && parts.pre_tokenizer->is_byte_level()) return "hf-bpe (ByteLevel)";
  if (byte_fallback) return "hf-bpe (byte fallback)";
  return "hf-bpe";
}

}  // namespace

std::shared_ptr<HfTokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json,
                                               const std::filesystem::path& config_file) {
  const Json root = tok::read_json_file(tokenizer_json);
  const JsonPath where(tokenizer_json);
  if (!root.is_object()) where.fail_expected("a tokenizer.json object", root);

  HfTokenizerParts parts;
  const Json& model = tok::require_key(root, "model", where, R"(the model, {"type": "BPE", ..})");
  parts.model = read_bpe_model(model, where / "model");
  const bool byte_fallback = tok::bool_or(model, "byte_fallback", false, where / "model");
  parts.added_tokens = read_added_tokens(root, where / "added_tokens");
  const Json null_json;
  const auto stage = [&](const char* key) -> const Json& {
    const Json* value = tok::find_key(root, key);
    return value ? *value : null_json;
  };
  parts.normalizer = tok::make_normalizer(stage("normalizer"), where / "normalizer");
  parts.pre_tokenizer = tok::make_pre_tokenizer(stage("pre_tokenizer"), where / "pre_tokenizer");
  parts.special_frame = tok::make_post_processor(stage("post_processor"), where / "post_processor");
  parts.decoder = tok::make_decoder(stage("decoder"), where / "decoder");
  // Without tokenizer_config.json, BOS/EOS are what the post-processor puts around the text.
  if (parts.special_frame.prefix.size() == 1) parts.bos_id = parts.special_frame.prefix[0];
  if (parts.special_frame.suffix.size() == 1) parts.eos_id = parts.special_frame.suffix[0];
  parts.kind = describe_kind(parts, byte_fallback);

  if (!config_file.empty()) {
    const Json config = tok::read_json_file(config_file);
    const JsonPath config_where(config_file);
    if (!config.is_object()) config_where.fail_expected("a tokenizer_config.json object", config);
    apply_config(config, config_where, parts);
  }
  return std::make_shared<HfTokenizer>(std::move(parts));
}

}  // namespace ptq
