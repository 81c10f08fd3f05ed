#include "network_helpers/tokenizer/hf_tokenizer.h"

#include <algorithm>

#include "framework/error.h"
#include "network_helpers/tokenizer/regex.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq {

HfTokenizer::HfTokenizer(HfTokenizerParts parts) : parts_(std::move(parts)) {
  PTQ_CHECK(parts_.model != nullptr, "HfTokenizer: a BPE model is required");
  std::vector<const tok::AddedToken*> raw, normalized;
  vocab_size_ = parts_.model->id_bound();
  for (const tok::AddedToken& token : parts_.added_tokens) {
    // Tokens with normalized=true are matched after the normalizer; without one, the raw text is
    // the normalized text and one pass finds them all.
    (token.normalized && parts_.normalizer ? normalized : raw).push_back(&token);
    added_by_id_[token.id] = &token;
    added_by_content_[token.content] = token.id;
    vocab_size_ = std::max(vocab_size_, token.id + 1);
  }
  raw_matcher_ = tok::AddedTokenMatcher(raw);
  normalized_matcher_ = tok::AddedTokenMatcher(normalized);
}

std::vector<int64_t> HfTokenizer::encode(std::string_view input, bool add_special_tokens) const {
  const std::string text = tok::to_valid_utf8(input);
  std::vector<int64_t> ids;
  if (add_special_tokens) ids = parts_.special_frame.prefix;
  for (const tok::TextSegment& segment : raw_matcher_.split(text)) {
    if (segment.token) {
      ids.push_back(segment.token->id);
    } else {
      encode_section(text.substr(segment.begin, segment.end - segment.begin), segment.begin == 0,
                     ids);
    }
  }
  if (add_special_tokens) {
    ids.insert(ids.end(), parts_.special_frame.suffix.begin(), parts_.special_frame.suffix.end());
  }
  return ids;
}

void HfTokenizer::encode_section(std::string section, bool at_text_start,
                                 std::vector<int64_t>& ids) const {
  if (parts_.normalizer) section = parts_.normalizer->normalize(std::move(section));
  if (section.empty()) return;
  if (normalized_matcher_.empty()) {
    encode_normalized(std::move(section), at_text_start, ids);
    return;
  }
  for (const tok::TextSegment& segment : normalized_matcher_.split(section)) {
    if (segment.token) {
      ids.push_back(segment.token->id);
    } else {
      encode_normalized(section.substr(segment.begin, segment.end - segment.begin),
                        at_text_start && segment.begin == 0, ids);
    }
  }
}

void HfTokenizer::encode_normalized(std::string text, bool at_text_start,
                                    std::vector<int64_t>& ids) const {
  std::vector<std::string> pieces{std::move(text)};
  if (parts_.pre_tokenizer) parts_.pre_tokenizer->pre_tokenize(pieces, at_text_start);
  for (const std::string& piece : pieces) parts_.model->encode(piece, ids);
}

std::string HfTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<tok::DecodePiece> pieces;
  pieces.reserve(ids.size());
  for (int64_t id : ids) {
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      if (!(skip_special_tokens && it->second->special))
        pieces.push_back({it->second->content, true});
    } else if (const std::string* text = parts_.model->token_text(id)) {
      pieces.push_back({*text, false});
    }
  }
  std::string text;
  if (parts_.decoder) {
    parts_.decoder->decode_chain(pieces);
    for (const auto& piece : pieces) text += piece.text;
  } else {  // Hugging Face joins the tokens with spaces when there is no decoder
    for (size_t i = 0; i < pieces.size(); ++i) text += (i ? " " : "") + pieces[i].text;
  }
  return parts_.clean_up_tokenization_spaces ? clean_up_tokenization(std::move(text)) : text;
}

std::string HfTokenizer::token_text(int64_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return it->second->content;
  const std::string* text = parts_.model->token_text(id);
  PTQ_CHECK(text != nullptr, "token_text: id {} is not in the vocabulary ({} ids, kind {})", id,
            vocab_size_, parts_.kind);
  return *text;
}

std::optional<int64_t> HfTokenizer::token_id(std::string_view token) const {
  if (auto it = added_by_content_.find(std::string(token)); it != added_by_content_.end()) {
    return it->second;
  }
  return parts_.model->token_id(token);
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) text = tok::Pattern::literal(from).replace_all(text, to);
  return text;
}

}  // namespace ptq
