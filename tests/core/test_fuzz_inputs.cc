// Seeded random-mutation fuzzing of every reader of files we do not control: safetensors files and
// index files, PTQConfig in JSON, INI, XML and INFO, and tokenizer.json. Each input must either
// load or throw ptq::Error with a message: any other exception, a crash, a hang or an unbounded
// allocation is a bug. docs/ROBUSTNESS.md records the counts and how to reproduce a run.
//
// Bounded for CI: each target stops after PTQ_FUZZ_ITERATIONS inputs (default 3000) or
// PTQ_FUZZ_SECONDS seconds (default 10), whichever comes first. PTQ_FUZZ_SEED changes the seed
// (default 1). Before each input is tried it is written to <tmp>/fuzz_<target>/last_input, so a
// crash leaves its reproducer behind; inputs that fail are kept in
// <tmp>/ptq_fuzz_failures/<target>/. The test prints those paths and the counts.
//
// Mutations: bit flips, interesting bytes, byte insertion/deletion, truncation, duplication of a
// range, splices of two seeds, numbers replaced by huge/negative/fractional ones, and nesting bombs
// inserted at random places (plus, for safetensors, mutations of the header with its length fixed
// up, and huge length fields). Hand-written hostile inputs run first in every target.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <torch/types.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/error.h"
#include "framework/ptq_config.h"
#include "framework/safetensors.h"
#include "network_helpers/tokenizer/hf_tokenizer_json.h"
#include "test_util.h"

namespace {
using ::ptq::testing::write_bytes;
using ::ptq::testing::read_bytes;
namespace fs = std::filesystem;

int64_t env_int(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::atoll(value) : fallback;
}

// ---- mutations ---------------------------------------------------------------------------------

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::string> seeds) : rng_(seed), seeds_(std::move(seeds)) {}

  size_t below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  const std::string& any_seed() { return seeds_[below(seeds_.size())]; }

  // 1-4 random mutations of a seed (or of a splice of two seeds).
  std::string next() {
    std::string s = any_seed();
    if (below(8) == 0) s = splice(s, any_seed());
    const size_t rounds = 1 + below(4);
    for (size_t r = 0; r < rounds; ++r) mutate(s);
    return s;
  }

  void mutate(std::string& s) {
    switch (below(10)) {
      case 0:  // bit flip
        if (!s.empty()) s[below(s.size())] ^= static_cast<char>(1u << below(8));
        break;
      case 1: {  // an interesting byte
        static const char kBytes[] = {'\0', '\xff', '\x7f', '\x80', '{', '}', '[', ']',
                                      '"',  '\\',   ',',    ':',    '<', '>', '/', ';',
                                      '=',  '\n',   '.',    '-',    '#', 'e'};
        if (!s.empty()) s[below(s.size())] = kBytes[below(sizeof(kBytes))];
        break;
      }
      case 2: {  // insert random bytes
        std::string bytes(1 + below(8), '\0');
        for (char& c : bytes) c = static_cast<char>(below(256));
        s.insert(below(s.size() + 1), bytes);
        break;
      }
      case 3:  // delete a range
        if (!s.empty()) {
          const size_t at = below(s.size());
          s.erase(at, 1 + below(std::min<size_t>(32, s.size() - at)));
        }
        break;
      case 4:  // truncate
        s.resize(below(s.size() + 1));
        break;
      case 5:  // duplicate a range somewhere else
        if (!s.empty()) {
          const size_t at = below(s.size());
          const std::string piece = s.substr(at, 1 + below(64));
          s.insert(below(s.size() + 1), piece);
        }
        break;
      case 6:
      case 7:
        replace_number(s);
        break;
      case 8:
        insert_bomb(s);
        break;
      default:  // replace a range with a piece of another seed
        if (!s.empty()) {
          const std::string& other = any_seed();
          const size_t from = below(other.size());
          s.replace(below(s.size()), below(16), other.substr(from, 1 + below(48)));
        }
        break;
    }
  }

  // Replaces a run of digits by a value that tends to break arithmetic and allocation.
  void replace_number(std::string& s) {
    static const char* kNumbers[] = {"0",
                                     "-1",
                                     "1",
                                     "2147483647",
                                     "2147483648",
                                     "4294967296",
                                     "9223372036854775807",
                                     "9223372036854775808",
                                     "18446744073709551615",
                                     "18446744073709551616",
                                     "1152921504606846976",
                                     "1e308",
                                     "-1e308",
                                     "1e999",
                                     "0.5",
                                     "-0",
                                     "NaN",
                                     "99999999999999999999999999"};
    std::vector<size_t> starts;
    for (size_t i = 0; i < s.size(); ++i)
      if (std::isdigit(static_cast<unsigned char>(s[i])) &&
          (i == 0 || !std::isdigit(static_cast<unsigned char>(s[i - 1]))))
        starts.push_back(i);
    if (starts.empty()) return;
    const size_t at = starts[below(starts.size())];
    size_t end = at;
    while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
    s.replace(at, end - at, kNumbers[below(sizeof(kNumbers) / sizeof(kNumbers[0]))]);
  }

  // Deep nesting in the syntax of every format we read.
  void insert_bomb(std::string& s) {
    static const char* kOpen[] = {"[", "{\"a\":", "<a>", "{\n", "(", "[a.", "a {\n"};
    const size_t kind = below(sizeof(kOpen) / sizeof(kOpen[0]));
    const size_t depth = below(4) == 0 ? 100000 : 1 + below(300);
    std::string bomb;
    bomb.reserve(depth * 6);
    for (size_t i = 0; i < depth; ++i) bomb += kOpen[kind];
    s.insert(below(s.size() + 1), bomb);
  }

  std::string splice(const std::string& a, const std::string& b) {
    return a.substr(0, below(a.size() + 1)) + b.substr(below(b.size() + 1));
  }

 private:
  std::mt19937_64 rng_;
  std::vector<std::string> seeds_;
};

// ---- the driver --------------------------------------------------------------------------------

struct FuzzCounts {
  int64_t tried = 0;
  int64_t loaded = 0;
  int64_t rejected = 0;  // ptq::Error
  std::vector<std::string> failures;
  double slowest_seconds = 0;  // how close the run came to kSlowSeconds, and on what
  std::string slowest_label;
  std::string slowest_input;  // written out once, after the run
};

// Keeps the address space bounded while a target runs, so that an allocation sized by a hostile
// length field fails (std::bad_alloc: a reported failure) instead of swapping the machine.
// AddressSanitizer reserves terabytes of shadow memory up front, so the limit is skipped there.
class AddressSpaceLimit {
 public:
  explicit AddressSpaceLimit(uint64_t extra_bytes) {
#if defined(__SANITIZE_ADDRESS__)
    (void)extra_bytes;
#else
    if (getrlimit(RLIMIT_AS, &saved_) != 0) return;
    std::ifstream status("/proc/self/status");
    uint64_t vm_kb = 0;
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmSize:", 0) == 0) vm_kb = std::strtoull(line.c_str() + 7, nullptr, 10);
    struct rlimit limited = saved_;
    limited.rlim_cur = vm_kb * 1024 + extra_bytes;
    if (saved_.rlim_max != RLIM_INFINITY && limited.rlim_cur > saved_.rlim_max) return;
    active_ = setrlimit(RLIMIT_AS, &limited) == 0;
#endif
  }
  ~AddressSpaceLimit() {
    if (active_) setrlimit(RLIMIT_AS, &saved_);
  }

 private:
  struct rlimit saved_ {};
  bool active_ = false;
};

// Runs `load` on the hand-written inputs, then on mutated seeds until the iteration or time budget
// is spent. `load` returns normally for an input it accepts and throws ptq::Error for one it
// refuses.
FuzzCounts fuzz(const std::string& target, const std::vector<std::string>& seeds,
                const std::vector<std::string>& hostile,
                const std::function<void(const std::string&)>& load,
                const std::function<std::string(Mutator&)>& custom = nullptr) {
  const int64_t iterations = env_int("PTQ_FUZZ_ITERATIONS", 3000);
  const double seconds = static_cast<double>(env_int("PTQ_FUZZ_SECONDS", 10));
  const uint64_t seed = static_cast<uint64_t>(env_int("PTQ_FUZZ_SEED", 1));
  const fs::path dir = ptq::testing::temp_dir("fuzz_" + target);
  const fs::path last = dir / "last_input";
  // Failing inputs outlive the test's temporary folder.
  const fs::path kept_dir = fs::temp_directory_path() / "ptq_fuzz_failures" / target;
  fs::create_directories(kept_dir);
  // An input slower than this counts as a hang. Typical inputs take microseconds to milliseconds;
  // the bound is loose because CI runs two test processes on two busy cores.
  constexpr double kSlowSeconds = 5.0;
  std::printf("[fuzz %s] seed %llu; the input being tried is kept in %s\n", target.c_str(),
              static_cast<unsigned long long>(seed), last.c_str());

  FuzzCounts counts;
  AddressSpaceLimit limit(uint64_t{4} << 30);
  Mutator mutator(seed, seeds);
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const auto try_one = [&](const std::string& input, const std::string& label) {
    write_bytes(last, input);
    const auto began = std::chrono::steady_clock::now();
    ++counts.tried;
    std::string failure;
    try {
      load(input);
      ++counts.loaded;
    } catch (const ptq::Error& e) {
      if (std::string(e.what()).empty()) failure = "ptq::Error with an empty message";
      ++counts.rejected;
    } catch (const std::exception& e) {
      failure = std::string("not a ptq::Error: ") + e.what();
    } catch (...) {
      failure = "an exception that is not a std::exception";
    }
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    if (failure.empty() && took > kSlowSeconds) failure = fmt::format("took {:.1f} s", took);
    if (took > counts.slowest_seconds) {
      counts.slowest_seconds = took;
      counts.slowest_label = label;
      counts.slowest_input = input;
    }
    if (!failure.empty()) {
      const fs::path kept = kept_dir / fmt::format("failure_{}", counts.failures.size());
      write_bytes(kept, input);
      counts.failures.push_back(
          fmt::format("{}: {} (input kept in {})", label, failure.substr(0, 300), kept.string()));
    }
  };

  for (size_t i = 0; i < seeds.size(); ++i) try_one(seeds[i], fmt::format("seed {}", i));
  for (size_t i = 0; i < hostile.size(); ++i) try_one(hostile[i], fmt::format("hostile {}", i));
  for (int64_t i = 0; i < iterations && elapsed() < seconds; ++i)
    try_one(custom && mutator.below(2) == 0 ? custom(mutator) : mutator.next(),
            fmt::format("mutation {}", i));

  write_bytes(kept_dir / "slowest", counts.slowest_input);
  std::printf(
      "[fuzz %s] %lld inputs in %.1f s: %lld loaded, %lld refused with ptq::Error, %zu "
      "failures; slowest %.3f s (%s, kept in %s)\n",
      target.c_str(), static_cast<long long>(counts.tried), elapsed(),
      static_cast<long long>(counts.loaded), static_cast<long long>(counts.rejected),
      counts.failures.size(), counts.slowest_seconds, counts.slowest_label.c_str(),
      (kept_dir / "slowest").c_str());
  for (const auto& failure : counts.failures) std::printf("  FAILURE %s\n", failure.c_str());
  return counts;
}

void expect_no_failures(const FuzzCounts& counts) {
  EXPECT_TRUE(counts.failures.empty())
      << counts.failures.size()
      << " failures, first: " << (counts.failures.empty() ? "" : counts.failures[0]);
  EXPECT_GT(counts.loaded, 0) << "no input loaded: the seeds are broken";
  EXPECT_GT(counts.rejected, 0);
}

// ---- safetensors -------------------------------------------------------------------------------

// A file as raw bytes: 8-byte little-endian length, header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return bytes + header + data;
}

std::vector<std::string> safetensors_seeds(const fs::path& dir) {
  std::vector<std::string> seeds;
  const auto add = [&](const ptq::NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
    const fs::path path = dir / "seed.safetensors";
    ptq::write_safetensors(path, tensors, metadata);
    seeds.push_back(read_bytes(path));
  };
  add({{"w", torch::arange(12, torch::kFloat32).reshape({3, 4})},
       {"b", torch::ones({3}, torch::kBFloat16)},
       {"q", torch::full({2, 5}, 7, torch::kInt8)},
       {"s", torch::tensor(3.5, torch::kFloat64)},
       {"e", torch::empty({0, 4}, torch::kFloat16)}},
      {{"format", "pt"}, {"note", "x"}});
  add({{"model.layers.0.mlp.down_proj.weight_packed", torch::zeros({4, 2}, torch::kInt32)},
       {"model.layers.0.mlp.down_proj.weight_shape", torch::tensor({4, 16}, torch::kInt64)},
       {"flag", torch::ones({3}, torch::kBool)}},
      {});
  return seeds;
}

// Header-aware mutation: mutate the JSON header as text and fix the length up, or write a huge
// length field.
std::string safetensors_custom(Mutator& m) {
  std::string file = m.any_seed();
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(file[i])) << (8 * i);
  std::string header = file.substr(8, n), data = file.substr(8 + n);
  if (m.below(6) == 0) {
    static const uint64_t kLengths[] = {uint64_t{1} << 60, ~uint64_t{0}, 100'000'001, 0, 7,
                                        header.size() + 1};
    const uint64_t length = kLengths[m.below(6)];
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
    return bytes + header + data;
  }
  const size_t rounds = 1 + m.below(3);
  for (size_t r = 0; r < rounds; ++r) {
    if (m.below(3) == 0) {
      static const char* kDtypes[] = {"\"F32\"", "\"BF16\"", "\"I8\"", "\"U64\"", "\"F8_E4M3\"",
                                      "\"F4\"",  "\"BOOL\"", "\"\"",   "7"};
      const size_t at = header.find("\"dtype\":");
      if (at != std::string::npos) {
        const size_t end = header.find(',', at);
        header.replace(at + 8, end - at - 8, kDtypes[m.below(9)]);
        continue;
      }
    }
    m.mutate(header);
  }
  if (m.below(4) == 0) data.resize(m.below(data.size() + 1));
  return safetensors_bytes(header, data);
}

TEST(FuzzInputs, SafetensorsReader) {
  const fs::path dir = ptq::testing::temp_dir("fuzz_safetensors_files");
  const fs::path file = dir / "model.safetensors";
  const std::vector<std::string> hostile = {
      "",
      std::string(7, '\0'),
      safetensors_bytes("", ""),
      std::string("\x00\x00\x00\x00\x00\x00\x00\x10{}", 10),  // header claims 2^60 bytes
      std::string("\xff\xff\xff\xff\xff\xff\xff\xff{}", 10),
      safetensors_bytes("{}", ""),
      safetensors_bytes("{}", "xx"),
      safetensors_bytes(std::string(200000, '[') + std::string(200000, ']'), ""),
      safetensors_bytes("{\"a\":" + std::string(100000, '{'), ""),
      safetensors_bytes(
          R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
      safetensors_bytes(
          R"({"t":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,0]}})", ""),
      safetensors_bytes(
          R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,7]}})", ""),
      safetensors_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        std::string(8, '\0')),
      safetensors_bytes(R"({"__metadata__":{"a":{"b":1}}})", ""),
      safetensors_bytes(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
      safetensors_bytes(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "abcd"),
      safetensors_bytes(R"({"t":{"dtype":"BF16","shape":[1],"data_offsets":[1,3]},)"
                        R"("u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                        "abc"),  // misaligned BF16: served as a copy
  };
  const auto counts = fuzz(
      "safetensors", safetensors_seeds(dir), hostile,
      [&](const std::string& input) {
        write_bytes(file, input);
        const ptq::SafetensorsFile st(file);
        for (const auto& name : st.names()) {
          const auto& info = st.info(name);
          if (info.dtype == torch::ScalarType::Undefined) continue;
          torch::Tensor t = st.tensor(name).clone();  // touches every byte the header claims
          EXPECT_EQ(static_cast<uint64_t>(t.nbytes()), info.nbytes());
        }
      },
      safetensors_custom);
  expect_no_failures(counts);
}

// The index of a sharded folder: mutated JSON pointing at shards.
TEST(FuzzInputs, SafetensorsIndex) {
  const fs::path dir = ptq::testing::temp_dir("fuzz_index_files");
  ptq::write_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", torch::ones({2})}});
  ptq::write_safetensors(dir / "model-00002-of-00002.safetensors", {{"b", torch::ones({3})}});
  const std::vector<std::string> seeds = {
      R"({"metadata": {"total_size": 20}, "weight_map": {"a": "model-00001-of-00002.safetensors", )"
      R"("b": "model-00002-of-00002.safetensors"}})"};
  const std::vector<std::string> hostile = {
      R"({"weight_map": {"a": "../../../etc/passwd"}})",
      R"({"weight_map": {"a": "/dev/zero"}})",
      R"({"weight_map": {"a": "."}})",
      R"({"weight_map": {"a": ""}})",
      std::string(100000, '[') + std::string(100000, ']'),
      R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "a": "x"}})",
  };
  const auto counts = fuzz("safetensors_index", seeds, hostile, [&](const std::string& input) {
    write_bytes(dir / "model.safetensors.index.json", input);
    const ptq::TensorStore store = ptq::TensorStore::open(dir);
    for (const auto& name : store.names()) store.tensor(name).clone();
  });
  expect_no_failures(counts);
}

// ---- PTQConfig ---------------------------------------------------------------------------------

const char* kJsonConfigs[] = {
    R"({"version": 1, "weight_quant_dtype": "int4", "weight_quant_granularity": "per_group",
        "group_size": 128, "weight_symmetric": false, "opname_blacklist": ["lm_head"],
        "outliers_suppression": "awq", "algo_args": {"awq": {"grid": 20, "clip_max_shrink": 0.45}},
        "calibration": {"dataset": "", "samples": 128, "seq_len": 512, "seed": 0}})",
    R"({"weight_quant_dtype": "int8", "act_quant_dtype": "int8", "act_quant_granularity": "per_tensor",
        "outliers_suppression": "smooth", "kvcache_quant_dtype": "int8",
        "layer_policies": [{"pattern": "down_proj$", "weight_quant_dtype": "int8",
                            "weight_quant_granularity": "per_channel"},
                           {"pattern": "^model\\.layers\\.0\\.", "skip": true}],
        "algo_args": {"smooth_quant": {"alpha": 0.5}, "my_plugin": {"x": [1, 2, {"y": null}]}}})",
    R"({"weight_quant_dtype": "int4", "weight_quant_granularity": "per_group", "group_size": 64,
        "precision_recovery": "gptq", "algo_args": {"gptq": {"damp_percent": 0.01, "block_size": 128,
        "act_order": true}}, "act_observer": "percentile", "act_percentile": 99.9})",
};

const char* kIniConfig = R"(; a comment
version = 1
weight_quant_dtype = int4
weight_quant_granularity = per_group
weight_symmetric = false
opname_blacklist = lm_head, mlp.down
outliers_suppression = awq

[algo_args.awq]
grid = 20

[algo_args.my_plugin]
alpha = 0.5
name = hello

[calibration]
dataset =
samples = 128

[layer_policies.0]
pattern = down_proj$
weight_quant_dtype = int8
weight_quant_granularity = per_channel

[layer_policies.1]
pattern = ^model\.layers\.0\.
skip = true
)";

const char* kXmlConfig = R"(<?xml version="1.0"?>
<!-- a comment -->
<ptq>
  <weight_quant_dtype>int4</weight_quant_dtype>
  <weight_quant_granularity>per_group</weight_quant_granularity>
  <group_size>128</group_size>
  <opname_blacklist><item>lm_head</item></opname_blacklist>
  <calibration><samples>128</samples><seed>3</seed></calibration>
  <algo_args><awq><grid>20</grid></awq></algo_args>
  <outliers_suppression>awq</outliers_suppression>
  <layer_policies>
    <item><pattern>^model\.layers\.0\.</pattern><skip>true</skip></item>
    <item><pattern>down_proj$</pattern><weight_quant_dtype>int8</weight_quant_dtype>
      <weight_quant_granularity>per_channel</weight_quant_granularity></item>
  </layer_policies>
</ptq>
)";

const char* kInfoConfig = R"(; a comment
weight_quant_dtype int4
weight_quant_granularity per_group
group_size 128
opname_blacklist
{
  item lm_head
}
calibration
{
  samples 128
  dataset "a file.txt"
}
algo_args
{
  gptq { damp_percent 0.02 }
}
precision_recovery gptq
layer_policies
{
  item
  {
    pattern "down_proj$"
    skip true
  }
}
)";

void fuzz_config(const std::string& format, const std::vector<std::string>& seeds,
                 const std::vector<std::string>& hostile) {
  const auto counts = fuzz("config_" + format, seeds, hostile, [&](const std::string& input) {
    const ptq::PTQConfig config = ptq::PTQConfig::from_string(input, format, "fuzz." + format);
    // Whatever loads must also survive what callers do next.
    const ptq::PTQConfig again = ptq::PTQConfig::from_json(config.to_json(), "round trip");
    if (again != config)  // a std::exception that is not a ptq::Error: recorded with its input
      throw std::logic_error("from_json(to_json()) changed the config: " + config.to_json().dump() +
                             " became " + again.to_json().dump());
    (void)config.summary();
    (void)config.scheme_for("model.layers.0.mlp.down_proj");
  });
  expect_no_failures(counts);
}

TEST(FuzzInputs, ConfigJson) {
  std::vector<std::string> seeds(std::begin(kJsonConfigs), std::end(kJsonConfigs));
  fuzz_config(
      "json", seeds,
      {std::string(100000, '[') + std::string(100000, ']'),
       "{\"algo_args\": {\"p\": " + std::string(50000, '[') + std::string(50000, ']') + "}}",
       R"({"layer_policies": [{"pattern": "a{99999999}", "skip": true}]})",
       R"({"layer_policies": [{"pattern": "((a{1000}){1000}){1000}", "skip": true}]})",
       R"({"layer_policies": [{"pattern": ")" + std::string(5000, '(') + std::string(5000, ')') +
           R"(", "skip": true}]})",
       R"({"group_size": 18446744073709551615})", R"({"act_percentile": 1e999})",
       R"({"calibration": {"samples": 9223372036854775807}})", "\"\xff\xfe\"",
       R"({"algo_args": {"my_plugin": {"x": 1e999}}})"});
}

TEST(FuzzInputs, ConfigIni) {
  fuzz_config("ini", {kIniConfig},
              {"[" + std::string(100000, 'a') + "]\nx = 1\n",
               "[" +
                   [] {
                     std::string s;
                     for (int i = 0; i < 50000; ++i) s += "a.";
                     return s;
                   }() +
                   "b]\nx = 1\n",
               "opname_blacklist = \xff\xfe\n", "group_size = 99999999999999999999\n",
               "[algo_args.my_plugin]\nx = nan\ny = -inf\nz = 1e999\n"});
}

TEST(FuzzInputs, ConfigXml) {
  std::string deep = "<ptq>";
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  std::string deep_in_comment = "<ptq><!-- ";
  for (int i = 0; i < 1000; ++i) deep_in_comment += "</a>";
  deep_in_comment += " -->";
  for (int i = 0; i < 100000; ++i) deep_in_comment += "<a>";
  fuzz_config("xml", {kXmlConfig},
              {deep, deep_in_comment, "<ptq><group_size a=\"1\">4</group_size></ptq>",
               "<!DOCTYPE ptq [<!ENTITY x \"xxxxxxxxxxxxxxxx\">]><ptq><mode>&x;</mode></ptq>",
               "<ptq>\xff</ptq>",
               "<ptq><algo_args><my_plugin><x>nan</x><y>inf</y></my_plugin></algo_args></ptq>"});
}

TEST(FuzzInputs, ConfigInfo) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "a {\n";
  std::string deep_words;  // braces inside words are not structure
  for (int i = 0; i < 1000; ++i) deep_words += "x}\n";
  for (int i = 0; i < 100000; ++i) deep_words += "a {\n";
  fuzz_config("info", {kInfoConfig},
              {deep, deep_words, "#include \"/dev/zero\"\n", "  # include \"/etc/passwd\"\n",
               "a \"unterminated\n", "a \"x\" \\\n", "mode \xff\n"});
}

// ---- tokenizer.json ----------------------------------------------------------------------------

// A small byte-level BPE tokenizer.json using every stage kind the loader knows.
std::string tokenizer_json_seed(const std::string& pre_tokenizer, const std::string& decoder) {
  return R"({
  "version": "1.0",
  "added_tokens": [
    {"id": 9, "content": "<s>", "special": true, "lstrip": false, "rstrip": false,
     "single_word": false, "normalized": false},
    {"id": 10, "content": "</s>", "special": true}
  ],
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "NFC"}, {"type": "Replace", "pattern": {"String": "  "}, "content": " "}]},
  "pre_tokenizer": )" +
         pre_tokenizer + R"(,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [9], "tokens": ["<s>"]}}},
  "decoder": )" +
         decoder + R"(,
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true,
    "byte_fallback": false, "ignore_merges": false,
    "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "abc": 5, "Ġ": 6, "Ġa": 7, "1": 8},
    "merges": ["a b", ["ab", "c"], "Ġ a"]}
})";
}

TEST(FuzzInputs, TokenizerJson) {
  const fs::path dir = ptq::testing::temp_dir("fuzz_tokenizer_files");
  const fs::path file = dir / "tokenizer.json";
  const std::vector<std::string> seeds = {
      tokenizer_json_seed(
          R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})",
          R"({"type": "ByteLevel"})"),
      tokenizer_json_seed(
          R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\d"},
              "behavior": "Isolated", "invert": false}, {"type": "Digits", "individual_digits": true},
              {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}]})",
          R"({"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"},
              "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})"),
  };
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0}, "merges": []})";
  std::string deep_sequence;
  for (int i = 0; i < 5000; ++i) deep_sequence += R"({"type": "Sequence", "pretokenizers": [)";
  const std::vector<std::string> hostile = {
      R"({"model": {"type": "BPE", "vocab": {"a": 2000000000}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 9223372036854775807}, "merges": []}})",
      "{" + model + R"(, "added_tokens": [{"id": 9223372036854775807, "content": "x"}]})",
      "{" + model + R"(, "added_tokens": [{"id": -5, "content": "x"}]})",
      "{" + model + R"(, "pre_tokenizer": )" + deep_sequence + "}",
      "{" + model + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a*)*b"},
          "behavior": "Isolated"}})",
      "{" + model + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a{99999999}"},
          "behavior": "Isolated"}})",
      "{" + model + R"(, "decoder": {"type": "Strip", "content": " ", "start": 9223372036854775807,
          "stop": 9223372036854775807}})",
      std::string(100000, '[') + std::string(100000, ']'),
  };
  const auto counts = fuzz("tokenizer_json", seeds, hostile, [&](const std::string& input) {
    write_bytes(file, input);
    const auto tokenizer = ptq::load_hf_tokenizer(file);
    // A loaded tokenizer must also encode and decode (short text, so a slow regex shows as slow).
    for (const char* text : {"abc ab  1c\xc3\xa9 <s>x</s>", "", "aaaaaaaaaaaaaaaaaaaaaaaaaaaab"}) {
      const std::vector<int64_t> ids = tokenizer->encode(text, true);
      (void)tokenizer->decode(ids, false);
    }
    (void)tokenizer->decode({-1, 0, 5, 9, 10, 1 << 30}, true);
  });
  expect_no_failures(counts);
}

}  // namespace
