// ptq tokenize: text -> ids -> text with a model folder's tokenizer or a bare tokenizer file.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <sstream>

#include "framework/error.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  std::string ids;  // comma/space separated ids to decode instead
  bool special = false;
  bool json = false;
};

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::string cleaned = text;
  for (char& c : cleaned)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream in(cleaned);
  std::string token;
  while (in >> token) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(token, &used));
      PTQ_CHECK(used == token.size(), "--ids: \"{}\" is not an integer", token);
    } catch (const std::logic_error&) {
      fail("--ids: \"{}\" is not an integer", token);
    }
  }
  return ids;
}

void run_tokenize(const TokenizeOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  auto tokenizer = load_tokenizer(o.tokenizer);
  std::vector<int64_t> ids = o.ids.empty() ? tokenizer->encode(o.text, o.special) : parse_ids(o.ids);
  for (int64_t id : ids)
    PTQ_CHECK(id >= 0 && id < tokenizer->vocab_size(), "id {} is outside the vocabulary [0, {})", id,
              tokenizer->vocab_size());
  std::string decoded = tokenizer->decode(ids, /*skip_special_tokens=*/false);
  std::vector<std::string> pieces;
  for (int64_t id : ids) pieces.push_back(tokenizer->token_text(id));
  if (o.json) {
    print_json({{"tokenizer", tokenizer->kind()}, {"ids", ids}, {"tokens", pieces}, {"decoded", decoded},
                {"count", ids.size()}});
    return;
  }
  std::cout << "ids (" << ids.size() << "): " << fmt::format("{}", fmt::join(ids, " ")) << "\n";
  std::cout << "tokens: " << fmt::format("{}", fmt::join(pieces, " | ")) << "\n";
  std::cout << "decoded: " << decoded << std::endl;
}

}  // namespace

void add_tokenize_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Encode text to ids (and decode back) with a tokenizer");
  cmd->add_option("-t,--tokenizer", options->tokenizer,
                  "Model folder or tokenizer file (tokenizer.json, tokenizer.model, llama2.c tok*.bin)")
      ->required()
      ->check(CLI::ExistingPath);
  auto text = cmd->add_option("text", options->text, "Text to encode");
  auto ids = cmd->add_option("--ids", options->ids, "Ids to decode instead, e.g. \"0,529,2950\"");
  text->excludes(ids);
  cmd->add_flag("--special", options->special, "Add special tokens (e.g. BOS) as the model would");
  cmd->add_flag("--json", options->json, "Print one JSON object");
  cmd->callback([options, &globals] { run_tokenize(*options, globals); });
}

}  // namespace ptq::cli
