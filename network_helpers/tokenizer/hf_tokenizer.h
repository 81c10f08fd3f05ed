// A Hugging Face-style BPE tokenizer: added-token split -> normalizer -> pre-tokenizer -> BPE model
// -> post-processor, and back through the decoder. Built from tokenizer.json (hf_tokenizer_json.h)
// or from GPT-2's encoder.json + vocab.bpe (gpt2_tokenizer.h); the pipeline is the same for both.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "framework/tokenizer.h"
#include "network_helpers/tokenizer/added_tokens.h"
#include "network_helpers/tokenizer/bpe_model.h"
#include "network_helpers/tokenizer/decoder.h"
#include "network_helpers/tokenizer/normalizer.h"
#include "network_helpers/tokenizer/post_processor.h"
#include "network_helpers/tokenizer/pre_tokenizer.h"

namespace ptq {

// The stages of the pipeline; null stages are skipped.
struct HfTokenizerParts {
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::BpeModel> model;  // required
  std::vector<tok::AddedToken> added_tokens;
  tok::SpecialTokenFrame special_frame;  // what add_special_tokens adds around the ids
  std::unique_ptr<tok::Decoder> decoder;
  std::optional<int64_t> bos_id, eos_id;
  // transformers' clean_up_tokenization_spaces: decode turns " ." into "." and " 's" into "'s",
  // etc.
  bool clean_up_tokenization_spaces = false;
  std::string kind;
};

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(HfTokenizerParts parts);

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override;
  // Ids outside the vocabulary are skipped, as Hugging Face does (models often pad their
  // embedding).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int64_t> bos_id() const override { return parts_.bos_id; }
  std::optional<int64_t> eos_id() const override { return parts_.eos_id; }
  std::string token_text(int64_t id) const override;
  std::optional<int64_t> token_id(std::string_view token) const override;
  std::string kind() const override { return parts_.kind; }

 private:
  // Encodes text between added tokens: normalize, split at normalized added tokens, pre-tokenize,
  // BPE.
  void encode_section(std::string section, bool at_text_start, std::vector<int64_t>& ids) const;
  void encode_normalized(std::string text, bool at_text_start, std::vector<int64_t>& ids) const;

  HfTokenizerParts parts_;
  tok::AddedTokenMatcher raw_matcher_;         // added tokens matched in the raw text
  tok::AddedTokenMatcher normalized_matcher_;  // added tokens with normalized=true
  std::unordered_map<int64_t, const tok::AddedToken*> added_by_id_;
  std::unordered_map<std::string, int64_t> added_by_content_;
  int64_t vocab_size_ = 0;
};

// transformers' clean_up_tokenization: removes the space before . ? ! , and English contractions.
std::string clean_up_tokenization(std::string text);

}  // namespace ptq
