// make_demo_model: trains the bundled demo model (examples/demo-model/) from scratch on CPU.
//
//   1. slices the Project Gutenberg corpus (../shared/data/corpus) into disjoint, seeded training
//   and
//      validation text (corpus_slices.h);
//   2. trains a 2048-token byte-level BPE tokenizer on the first 4 MB of the training slice
//   (bpe_trainer.h)
//      and tokenizes both slices with it (bpe_encoder.h);
//   3. trains ptq's own LlamaForCausalLM (GQA, tied embeddings) with AdamW in float32
//   (lm_training.h);
//   4. writes a Hugging Face folder with bfloat16 weights (hf_folder.h), reloads its tokenizer with
//   ptq's
//      tokenizer library to check that both tokenizers agree, and prints greedy samples.
// Everything is seeded; the README of the output folder records the exact command.
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "framework/error.h"
#include "framework/threads.h"
#include "network_helpers/llama/model_spec.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "ptq/build_config.h"
#include "tools/make_demo_model/bpe_encoder.h"
#include "tools/make_demo_model/bpe_trainer.h"
#include "tools/make_demo_model/corpus_slices.h"
#include "tools/make_demo_model/hf_folder.h"
#include "tools/make_demo_model/lm_training.h"

namespace fs = std::filesystem;
using namespace ptq::demo;

namespace {

fs::path default_corpus_dir() {
  const char* shared = std::getenv("PTQ_SHARED_DIR");
  return fs::path(shared ? shared : PTQ_DEFAULT_SHARED_DIR) / "data" / "corpus";
}

// Cross-entropy (nats/token) of `eval` under the add-one-smoothed unigram distribution of `train`:
// the loss a model that ignores context would reach, the floor a trained model must clearly beat.
double unigram_loss(const std::vector<int32_t>& train, const std::vector<int32_t>& eval,
                    int64_t vocab) {
  std::vector<double> counts(vocab, 1.0);
  for (int32_t id : train) counts[id] += 1.0;
  double total = double(train.size()) + double(vocab), loss = 0;
  for (int32_t id : eval) loss -= std::log(counts[id] / total);
  return loss / double(eval.size());
}

// Ids of ptq's tokenizer (the library the CLI uses) must equal the trainer's own encoder on real
// text, and decoding must give the text back: two independent implementations agreeing on the file.
void check_tokenizer(const fs::path& dir, BpeEncoder& encoder, const std::string& text) {
  auto tokenizer = ptq::load_tokenizer(dir);
  std::vector<int32_t> ours = encoder.encode(text);
  std::vector<int64_t> theirs = tokenizer->encode(text, /*add_special_tokens=*/true);
  PTQ_CHECK(!theirs.empty() && theirs[0] == 0, "{}: ptq's tokenizer does not start with <|bos|>=0",
            dir.string());
  theirs.erase(theirs.begin());
  size_t mismatch = 0;
  while (mismatch < ours.size() && mismatch < theirs.size() && ours[mismatch] == theirs[mismatch])
    ++mismatch;
  PTQ_CHECK(ours.size() == theirs.size() && mismatch == ours.size(),
            "{}: ptq's tokenizer gives {} ids, the trainer's encoder {}; first difference at id {}",
            dir.string(), theirs.size(), ours.size(), mismatch);
  std::string decoded = tokenizer->decode(theirs, /*skip_special_tokens=*/true);
  PTQ_CHECK(decoded == text,
            "{}: ptq's tokenizer does not decode {} bytes of text back to themselves", dir.string(),
            text.size());
  fmt::print(
      "tokenizer check: ptq::load_tokenizer ({}) agrees with the trainer on {} bytes ({} ids), "
      "round trip ok\n",
      tokenizer->kind(), text.size(), ours.size());
}

std::string greedy(ptq::LlamaForCausalLM& network, BpeEncoder& encoder, const std::string& prompt,
                   int64_t tokens) {
  torch::NoGradGuard no_grad;
  std::vector<int32_t> ids = {0};
  for (int32_t id : encoder.encode(prompt)) ids.push_back(id);
  const size_t prompt_len = ids.size();
  for (int64_t i = 0; i < tokens; ++i) {
    auto input =
        torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64).unsqueeze(0);
    auto logits = network.forward(input);
    ids.push_back(int32_t(logits[0][-1].argmax().item<int64_t>()));
    if (ids.back() == 1) break;  // <|eos|>
  }
  return encoder.decode(std::vector<int32_t>(ids.begin() + prompt_len, ids.end()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Trains ptq's bundled demo model (a small Llama) on the Project Gutenberg corpus, on CPU"};
  fs::path corpus_dir = default_corpus_dir(), out_dir;
  CorpusSliceOptions slices_options;
  BpeTrainerOptions bpe_options;
  LlamaShape shape;
  TrainOptions train_options;
  int threads = 0;
  int64_t sample_tokens = 48;
  app.add_option("--out", out_dir, "Output model folder (e.g. examples/demo-model)")->required();
  app.add_option("--corpus", corpus_dir,
                 "Folder with train_*.txt (default: $PTQ_SHARED_DIR/data/corpus)");
  app.add_option("--seed", train_options.seed, "Seed of the slices, the init and the batches");
  app.add_option("--train-bytes", slices_options.train_bytes,
                 "Bytes of corpus text in the training slice");
  app.add_option("--val-bytes", slices_options.validation_bytes,
                 "Bytes of corpus text in the validation slice");
  app.add_option("--tokenizer-bytes", slices_options.tokenizer_bytes,
                 "Bytes of the training slice the BPE sees");
  app.add_option("--vocab", shape.vocab_size, "Vocabulary size (3 specials + 256 bytes + merges)");
  app.add_option("--hidden", shape.hidden_size, "hidden_size");
  app.add_option("--intermediate", shape.intermediate_size, "intermediate_size (SwiGLU)");
  app.add_option("--layers", shape.num_layers, "num_hidden_layers");
  app.add_option("--heads", shape.num_heads, "num_attention_heads");
  app.add_option("--kv-heads", shape.num_kv_heads, "num_key_value_heads");
  app.add_option("--head-dim", shape.head_dim, "head_dim");
  app.add_option("--max-positions", shape.max_position_embeddings, "max_position_embeddings");
  app.add_flag("!--untied", shape.tie_word_embeddings,
               "Separate lm_head weights (default: tied to the embeddings)");
  app.add_option("--steps", train_options.steps, "Optimizer steps");
  app.add_option("--batch", train_options.batch, "Sequences per step");
  app.add_option("--seq-len", train_options.seq_len, "Tokens per sequence (BOS included)");
  app.add_option("--lr", train_options.lr, "Peak learning rate");
  app.add_option("--min-lr", train_options.min_lr, "Final learning rate of the cosine");
  app.add_option("--warmup", train_options.warmup, "Warmup steps");
  app.add_option("--weight-decay", train_options.weight_decay,
                 "AdamW weight decay (matrices only)");
  app.add_option("--eval-every", train_options.eval_every, "Steps between validation losses");
  app.add_option("--eval-windows", train_options.eval_windows,
                 "Validation windows of seq-len tokens");
  app.add_option("--log-every", train_options.log_every, "Steps between progress lines");
  app.add_option("--threads", threads, "Intra-op threads (0: all cores)");
  app.add_option("--sample-tokens", sample_tokens,
                 "Tokens of each greedy sample printed at the end");
  CLI11_PARSE(app, argc, argv);

  try {
    auto t0 = std::chrono::steady_clock::now();
    auto since = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    fmt::print("threads: {}\n", ptq::configure_threads(threads));
    slices_options.seed = train_options.seed;
    CorpusSlices slices = slice_corpus(corpus_dir, slices_options);
    fmt::print(
        "corpus: {} bytes in {} blocks; validation {} bytes ({} blocks), training {} bytes ({} "
        "blocks), "
        "tokenizer sample {} bytes\n",
        slices.corpus_bytes, slices.blocks_total, slices.validation.size(),
        slices.validation_blocks, slices.train.size(), slices.train_blocks,
        slices.tokenizer_sample.size());

    bpe_options.vocab_size = shape.vocab_size;
    BpeVocabulary vocabulary = train_bpe(slices.tokenizer_sample, bpe_options);
    PTQ_CHECK(int64_t(vocabulary.tokens.size()) == shape.vocab_size,
              "the BPE trainer stopped at {} tokens, short of --vocab {}: give it more text",
              vocabulary.tokens.size(), shape.vocab_size);
    BpeEncoder encoder(vocabulary);
    std::vector<int32_t> train_tokens = encoder.encode(slices.train);
    std::vector<int32_t> val_tokens = encoder.encode(slices.validation);
    fmt::print("tokens: training {} ({:.2f} bytes/token), validation {}; {:.1f} s\n",
               train_tokens.size(), double(slices.train.size()) / double(train_tokens.size()),
               val_tokens.size(), since());
    const double unigram = unigram_loss(train_tokens, val_tokens, shape.vocab_size);
    fmt::print("unigram baseline: validation loss {:.4f} (perplexity {:.1f})\n", unigram,
               std::exp(unigram));

    auto config = llama_config_json(shape, "bfloat16");
    ptq::ModelSpec spec =
        ptq::ModelSpec::from_json(nlohmann::json::parse(config.dump()), "demo model config");
    // On the heap: the constructor walks named_modules(), which needs the module in a shared_ptr.
    auto network_ptr = std::make_shared<ptq::LlamaForCausalLM>(spec);
    ptq::LlamaForCausalLM& network = *network_ptr;
    initialize_for_training(network, train_options.seed);
    fmt::print(
        "model: {} parameters (hidden {}, {} layers, {} heads / {} KV heads, head_dim {}, "
        "intermediate {}, "
        "vocab {}, {} embeddings)\n",
        spec.parameter_count(), shape.hidden_size, shape.num_layers, shape.num_heads,
        shape.num_kv_heads, shape.head_dim, shape.intermediate_size, shape.vocab_size,
        shape.tie_word_embeddings ? "tied" : "untied");
    fmt::print(
        "training: {} steps x {} sequences x {} tokens = {} tokens ({:.2f} epochs of the training "
        "slice)\n",
        train_options.steps, train_options.batch, train_options.seq_len,
        train_options.steps * train_options.batch * train_options.seq_len,
        double(train_options.steps * train_options.batch * train_options.seq_len) /
            double(train_tokens.size()));
    std::fflush(stdout);
    TrainResult result = train(network, train_tokens, val_tokens, train_options);

    // The folder stores bfloat16: measure what a user of the folder gets, not the float32 weights.
    {
      torch::NoGradGuard no_grad;
      for (auto& p : network.parameters()) p.set_data(p.to(torch::kBFloat16).to(torch::kFloat32));
    }
    const double val_bf16 = evaluate_loss(network, val_tokens, train_options.eval_windows,
                                          train_options.seq_len, train_options.bos_id);
    int64_t bytes = write_model_folder(out_dir, network, config, vocabulary);
    check_tokenizer(out_dir, encoder,
                    slices.validation.substr(0, slices.validation.find('\n', 200000) + 1));

    fmt::print("\n== summary ==\n");
    fmt::print("parameters: {}; model.safetensors: {} bytes (bfloat16)\n", spec.parameter_count(),
               bytes);
    fmt::print("training: {:.0f} s for {} tokens ({:.0f} tokens/s); total run {:.0f} s\n",
               result.seconds, result.tokens_seen, double(result.tokens_seen) / result.seconds,
               since());
    fmt::print("train loss (mean of the last 10% of steps): {:.4f}\n", result.train_loss);
    fmt::print("train loss (validation protocol, start of the training slice): {:.4f}\n",
               result.train_eval_loss);
    fmt::print(
        "validation loss: float32 {:.4f} (perplexity {:.2f}); bfloat16 as saved {:.4f} (perplexity "
        "{:.2f})\n",
        result.val_loss, std::exp(result.val_loss), val_bf16, std::exp(val_bf16));
    fmt::print("unigram baseline: {:.4f} (perplexity {:.1f})\n", unigram, std::exp(unigram));
    for (const std::string prompt :
         {"It was a dark and stormy night", "The old man said to his son,", "In the morning",
          "Elizabeth looked at him and"}) {
      fmt::print("\ngreedy> {}|{}\n", prompt, greedy(network, encoder, prompt, sample_tokens));
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "make_demo_model: {}\n", e.what());
    return 1;
  }
}
