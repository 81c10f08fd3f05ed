// A quantized checkpoint loaded onto the GPU (load_quantized with device cuda) moves its network of
// placeholders there before the DEPLOY structure and the tensors are loaded: they must stay placeholders.
// Module::to copies into dense tensors, which allocated the whole float model on the GPU first. Skips
// without a visible GPU (on CI).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "framework/deferred_weights.h"

namespace {

TEST(CudaDeferredWeights, MoveToDeviceKeepsPlaceholders) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch";
  const torch::Device gpu(torch::kCUDA, 0);
  torch::nn::Module module;
  const torch::Tensor& weight = module.register_parameter("weight", ptq::deferred_placeholder({4096, 4096}));
  const torch::Tensor& bias = module.register_parameter("bias", torch::ones({4096}));  // a loaded tensor
  ptq::move_to_device(module, gpu);
  EXPECT_TRUE(weight.is_cuda());
  EXPECT_TRUE(ptq::is_deferred(weight)) << "the placeholder was expanded into a dense 64 MB tensor";
  EXPECT_TRUE(torch::isnan(weight[3][5]).item<bool>());
  EXPECT_TRUE(bias.is_cuda());
  EXPECT_FALSE(ptq::is_deferred(bias));
  EXPECT_TRUE(torch::equal(bias.cpu(), torch::ones({4096})));
  // Filling a placeholder on the GPU gives it storage there.
  ptq::fill_tensor(weight, torch::full({4096, 4096}, 0.5f));
  EXPECT_TRUE(weight.is_cuda());
  EXPECT_FALSE(ptq::is_deferred(weight));
  EXPECT_EQ(weight.sum().item<double>(), 0.5 * 4096 * 4096);
}

}  // namespace
