#include "network_helpers/tokenizer/gpt2_tokenizer.h"

#include <fstream>

#include "framework/error.h"

namespace ptq {

namespace {
constexpr const char* kEndOfText = "<|endoftext|>";

// vocab.bpe: an optional "#version: 0.2" first line, then "a b" per line; blank lines are ignored.
std::vector<std::pair<std::string, std::string>> read_vocab_bpe(const std::filesystem::path& file,
                                                                std::vector<size_t>& line_numbers) {
  std::ifstream in(file, std::ios::binary);
  PTQ_CHECK(in.good(), "{}: cannot open the file", file.string());
  std::vector<std::pair<std::string, std::string>> merges;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t space = line.find(' ');
    PTQ_CHECK(
        space != std::string::npos && space > 0 && space + 1 < line.size() &&
            line.find(' ', space + 1) == std::string::npos,
        "{}: line {}: expected a merge \"a b\" (two tokens separated by one space), got \"{}\"",
        file.string(), number, line);
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    line_numbers.push_back(number);
  }
  return merges;
}
}  // namespace

std::shared_ptr<HfTokenizer> load_gpt2_tokenizer(const std::filesystem::path& encoder_json,
                                                 const std::filesystem::path& vocab_bpe) {
  auto vocab = tok::read_vocab_json(tok::read_json_file(encoder_json), tok::JsonPath(encoder_json));
  std::vector<size_t> line_numbers;
  const auto merges = read_vocab_bpe(vocab_bpe, line_numbers);

  HfTokenizerParts parts;
  std::optional<int64_t> endoftext;
  if (auto it = vocab.find(kEndOfText); it != vocab.end()) endoftext = it->second;
  parts.model = std::make_unique<tok::BpeModel>(
      std::move(vocab), merges, tok::BpeOptions{},
      [&](size_t i) { return fmt::format("{}: line {}", vocab_bpe.string(), line_numbers[i]); });
  if (endoftext) {
    tok::AddedToken token;
    token.content = kEndOfText;
    token.id = *endoftext;
    token.special = true;
    parts.added_tokens.push_back(token);
    parts.bos_id = parts.eos_id = endoftext;
  }
  parts.pre_tokenizer = tok::make_gpt2_byte_level_pre_tokenizer();
  parts.decoder = tok::make_byte_level_decoder();
  parts.kind = "gpt2 (encoder.json + vocab.bpe)";
  return std::make_shared<HfTokenizer>(std::move(parts));
}

}  // namespace ptq
