// What this shows: the embedding API end to end, as a user's program would call it.
//   1. load a float Hugging Face folder and quantize it with a recipe (apply -> convert)
//   2. save the quantized checkpoint
//   3. deploy: rebuild the network from the checkpoint folder alone (load_quantized) and check that it
//      computes exactly what the quantized network computed, then generate a few tokens with it
// Exits 1 when the deployed network differs or generates nothing (it runs as a test: ctest -L example).
// Assumptions: a Llama-family folder (config.json, *.safetensors, tokenizer files) and a recipe from
// configs/ that needs no calibration data (RTN), unless calibration.dataset points at a text file.
//
//   build/examples/quantize_and_deploy examples/demo-model configs/w4a16_rtn_g128.json out/demo-w4a16
#include <iostream>

#include "algorithms/ptq.h"
#include "framework/checkpoint.h"
#include "framework/error.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/quantized_model.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: quantize_and_deploy MODEL_DIR CONFIG OUT_DIR\n";
    return 2;
  }
  try {
    torch::NoGradGuard no_grad;
    // 1. quantize
    ptq::PTQConfig cfg = ptq::PTQConfig::from_file(argv[2]);
    ptq::LlamaNetworkHelper helper(argv[1]);
    std::shared_ptr<ptq::CausalLM> net = helper.create_network();
    ptq::PTQ algo(cfg);
    algo.apply(net, helper);
    algo.convert(net);
    // 2. save
    ptq::save_checkpoint(*net, argv[3]);
    // 3. deploy from the folder alone
    std::shared_ptr<ptq::CausalLM> deployed = ptq::load_quantized(argv[3]);
    auto tokenizer = helper.create_tokenizer();
    std::vector<int64_t> prompt = tokenizer->encode("Once upon a time", /*add_special_tokens=*/true);
    torch::Tensor ids = torch::tensor(prompt, torch::kInt64).unsqueeze(0);
    const bool identical = torch::equal(net->forward(ids), deployed->forward(ids));
    std::cout << "quantized: " << cfg.summary() << "\n"
              << "layers quantized: " << algo.report().quantized_count() << " of " << algo.report().layers().size()
              << "\n"
              << "deployed logits identical to the quantized network's: " << (identical ? "yes" : "NO") << "\n";
    ptq::GenerationOptions options;
    options.max_new_tokens = 24;
    auto out = helper.generate(*deployed, {prompt}, options);
    const std::string text = tokenizer->decode(out[0], /*skip_special_tokens=*/true);
    std::cout << "generated: " << text << "\n";
    return identical && !out[0].empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "quantize_and_deploy: " << e.what() << "\n";
    return 1;
  }
}
