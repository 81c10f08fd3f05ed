// PTQConfig: every recipe in configs/ loads; JSON, INI, XML and INFO give the same config; the
// canonical JSON round-trips; each validation rule fires with a message naming the key and value;
// layer policies resolve as documented in docs/CONFIG.md.
#include <gtest/gtest.h>
#include <ptq/build_config.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "framework/error.h"
#include "framework/ptq_config.h"
#include "test_util.h"

namespace ptq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The message of the ptq::Error that `action` throws ("" and a test failure when it throws none).
using testing::contains;
using testing::error_of;

std::string load_error(const json& config) {
  return error_of([&] { PTQConfig::from_json(config, "cfg.json"); });
}

fs::path write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

fs::path configs_dir() { return fs::path(PTQ_SOURCE_DIR) / "configs"; }

// One config that uses every kind of value: enums, ints, floats, bools, lists, nested objects, a
// plugin's free-form arguments and two layer policies. Written below in all four formats.
const char* kRichJson = R"({
  "mode": "quantize", "backend": "cuda",
  "opname_blacklist": ["lm_head", "mlp.gate"],
  "weight_quant_dtype": "int4", "weight_quant_granularity": "per_group", "group_size": 64,
  "weight_symmetric": false,
  "act_observer": "percentile", "act_percentile": 99.9,
  "kvcache_quant_dtype": "int8", "kvcache_quant_granularity": "per_token",
  "outliers_suppression": "awq", "precision_recovery": "gptq",
  "algo_args": {"awq": {"grid": 10, "clip_max_shrink": 0.3}, "gptq": {"act_order": true},
                "my_plugin": {"beta": 2, "name": "x", "on": true}},
  "calibration": {"dataset": "data/calib.txt", "samples": 64, "seq_len": 256, "seed": 7},
  "layer_policies": [
    {"pattern": "^model\\.layers\\.0\\.", "skip": true},
    {"pattern": "down_proj$", "weight_quant_dtype": "int8", "weight_quant_granularity": "per_channel",
     "weight_symmetric": true}
  ]
})";

const char* kRichIni = R"(; the rich config, INI flavour
mode = quantize
backend = cuda
opname_blacklist = lm_head, mlp.gate
weight_quant_dtype = int4
weight_quant_granularity = per_group
group_size = 64
weight_symmetric = false
act_observer = percentile
act_percentile = 99.9
kvcache_quant_dtype = int8
kvcache_quant_granularity = per_token
outliers_suppression = awq
precision_recovery = gptq

[algo_args.awq]
grid = 10
clip_max_shrink = 0.3

[algo_args.gptq]
act_order = true

[algo_args.my_plugin]
beta = 2
name = x
on = true

[calibration]
dataset = data/calib.txt
samples = 64
seq_len = 256
seed = 7

[layer_policies.1]
pattern = down_proj$
weight_quant_dtype = int8
weight_quant_granularity = per_channel
weight_symmetric = true

[layer_policies.0]
pattern = ^model\.layers\.0\.
skip = true
)";

const char* kRichXml = R"(<?xml version="1.0"?>
<!-- the rich config, XML flavour -->
<ptq>
  <mode>quantize</mode>
  <backend>cuda</backend>
  <opname_blacklist><item>lm_head</item><item>mlp.gate</item></opname_blacklist>
  <weight_quant_dtype>int4</weight_quant_dtype>
  <weight_quant_granularity>per_group</weight_quant_granularity>
  <group_size>64</group_size>
  <weight_symmetric>false</weight_symmetric>
  <act_observer>percentile</act_observer>
  <act_percentile>99.9</act_percentile>
  <kvcache_quant_dtype>int8</kvcache_quant_dtype>
  <kvcache_quant_granularity>per_token</kvcache_quant_granularity>
  <outliers_suppression>awq</outliers_suppression>
  <precision_recovery>gptq</precision_recovery>
  <algo_args>
    <awq><grid>10</grid><clip_max_shrink>0.3</clip_max_shrink></awq>
    <gptq><act_order>true</act_order></gptq>
    <my_plugin><beta>2</beta><name>x</name><on>true</on></my_plugin>
  </algo_args>
  <calibration>
    <dataset>data/calib.txt</dataset><samples>64</samples><seq_len>256</seq_len><seed>7</seed>
  </calibration>
  <layer_policies>
    <item><pattern>^model\.layers\.0\.</pattern><skip>true</skip></item>
    <item>
      <pattern>down_proj$</pattern>
      <weight_quant_dtype>int8</weight_quant_dtype>
      <weight_quant_granularity>per_channel</weight_quant_granularity>
      <weight_symmetric>true</weight_symmetric>
    </item>
  </layer_policies>
</ptq>
)";

const char* kRichInfo = R"(; the rich config, INFO flavour
mode quantize
backend cuda
opname_blacklist
{
  item lm_head
  item mlp.gate
}
weight_quant_dtype int4
weight_quant_granularity per_group
group_size 64
weight_symmetric false
act_observer percentile
act_percentile 99.9
kvcache_quant_dtype int8
kvcache_quant_granularity per_token
outliers_suppression awq
precision_recovery gptq
algo_args
{
  awq { grid 10
        clip_max_shrink 0.3 }
  gptq { act_order true }
  my_plugin
  {
    beta 2
    name x
    on true
  }
}
calibration
{
  dataset "data/calib.txt"
  samples 64
  seq_len 256
  seed 7
}
layer_policies
{
  item
  {
    pattern "^model\\.layers\\.0\\."
    skip true
  }
  item
  {
    pattern "down_proj$"
    weight_quant_dtype int8
    weight_quant_granularity per_channel
    weight_symmetric true
  }
}
)";

// ---- loading
// -------------------------------------------------------------------------------------

TEST(PTQConfig, EmptyObjectGivesTheDefaults) {
  const PTQConfig config = PTQConfig::from_json(json::object(), "cfg.json");
  EXPECT_EQ(config, PTQConfig());
  EXPECT_EQ(config.version, kPTQConfigVersion);
  EXPECT_EQ(config.mode, PTQMode::kQuantize);
  EXPECT_EQ(config.backend, BackendTarget::kAuto);
  EXPECT_EQ(config.opname_blacklist, std::vector<std::string>{"lm_head"});
  EXPECT_EQ(config.weight_quant_dtype, QuantDtype::kInt8);
  EXPECT_EQ(config.weight_quant_granularity, QuantGranularity::kPerChannel);
  EXPECT_EQ(config.group_size, 128);
  EXPECT_TRUE(config.weight_symmetric);
  EXPECT_EQ(config.act_quant_dtype, QuantDtype::kNone);
  EXPECT_EQ(config.kvcache_quant_dtype, QuantDtype::kNone);
  EXPECT_EQ(config.act_observer, ActObserver::kMinMax);
  EXPECT_DOUBLE_EQ(config.act_percentile, 99.99);
  EXPECT_EQ(config.calibration.dataset, "");
  EXPECT_EQ(config.calibration.samples, 128);
  EXPECT_EQ(config.calibration.seq_len, 512);
  EXPECT_EQ(config.calibration.seed, 0);
  EXPECT_TRUE(config.layer_policies.empty());
  EXPECT_EQ(config.summary(), "W8A16 per-channel sym, RTN");
}

TEST(PTQConfig, EveryRecipeLoadsAndMatchesItsName) {
  std::vector<fs::path> recipes;
  for (const auto& entry : fs::directory_iterator(configs_dir())) recipes.push_back(entry.path());
  ASSERT_GE(recipes.size(), 15u) << "recipes in " << configs_dir();
  for (const fs::path& path : recipes) {
    SCOPED_TRACE(path.string());
    PTQConfig config;
    ASSERT_NO_THROW(config = PTQConfig::from_file(path));
    const std::string name = path.stem().string();
    const auto has = [&](const std::string& token) {
      return name.find(token) != std::string::npos;
    };
    EXPECT_EQ(config.outliers_suppression == OutliersSuppressionType::kAwq, has("awq"));
    EXPECT_EQ(config.outliers_suppression == OutliersSuppressionType::kSmooth, has("smoothquant"));
    EXPECT_EQ(config.precision_recovery == PrecisionRecovery::kGptq, has("gptq"));
    EXPECT_EQ(config.kvcache_quant_dtype == QuantDtype::kInt8, has("kv8"));
    EXPECT_EQ(config.act_quant_dtype == QuantDtype::kInt8, has("a8"));
    if (has("w4")) {
      EXPECT_EQ(config.weight_quant_dtype, QuantDtype::kInt4);
    }
    if (has("w3")) {
      EXPECT_EQ(config.weight_quant_dtype, QuantDtype::kInt3);
    }
    if (has("w8")) {
      EXPECT_EQ(config.weight_quant_dtype, QuantDtype::kInt8);
    }
    if (has("g128")) {
      EXPECT_EQ(config.weight_quant_granularity, QuantGranularity::kPerGroup);
      EXPECT_EQ(config.group_size, 128);
      EXPECT_EQ(config.weight_symmetric, has("_sym"));
    }
    EXPECT_EQ(config.calibration.samples, 128);
    EXPECT_EQ(config.calibration.seq_len, 512);
    EXPECT_EQ(config.calibration.dataset, "");
    EXPECT_FALSE(config.summary().empty());
  }
}

TEST(PTQConfig, IniRecipeEqualsJsonRecipe) {
  const PTQConfig ini = PTQConfig::from_file(configs_dir() / "w4a16_rtn_g128.ini");
  const PTQConfig from_json = PTQConfig::from_file(configs_dir() / "w4a16_rtn_g128.json");
  EXPECT_EQ(ini.to_json(), from_json.to_json());
  EXPECT_EQ(ini.summary(), "W4A16 g128 asym, RTN");
}

TEST(PTQConfig, JsonIniXmlInfoGiveTheSameConfig) {
  const fs::path dir = ::ptq::testing::temp_dir("ptq_config_formats");
  const PTQConfig reference = PTQConfig::from_json(json::parse(kRichJson), "rich.json");
  const json expected = reference.to_json();
  for (const auto& [name, text] :
       std::vector<std::pair<std::string, const char*>>{{"rich.json", kRichJson},
                                                        {"rich.ini", kRichIni},
                                                        {"rich.xml", kRichXml},
                                                        {"rich.INFO", kRichInfo}}) {
    SCOPED_TRACE(name);
    PTQConfig loaded;
    ASSERT_NO_THROW(loaded = PTQConfig::from_file(write_file(dir / name, text)));
    EXPECT_EQ(loaded.to_json(), expected) << loaded.to_json().dump(2);
  }
  // What the rich config says, read back through the typed fields.
  EXPECT_EQ(reference.backend, BackendTarget::kCuda);
  EXPECT_EQ(reference.opname_blacklist, (std::vector<std::string>{"lm_head", "mlp.gate"}));
  EXPECT_EQ(reference.layer_policies.size(), 2u);
  EXPECT_EQ(reference.layer_policies[0].pattern, "^model\\.layers\\.0\\.");
  EXPECT_EQ(reference.algo_args_for("awq")["grid"], 10);
  EXPECT_EQ(reference.algo_args_for("awq")["clip_tokens"], 512);  // default filled in
  EXPECT_EQ(reference.algo_args_for("my_plugin"),
            json::parse(R"({"beta": 2, "name": "x", "on": true})"));
  EXPECT_EQ(reference.calibration.dataset, "data/calib.txt");
  EXPECT_EQ(reference.calibration.seed, 7);
}

TEST(PTQConfig, EmptyListsInIniAndXml) {
  const PTQConfig ini = PTQConfig::from_string("opname_blacklist =\n", "ini", "cfg.ini");
  EXPECT_TRUE(ini.opname_blacklist.empty());
  const PTQConfig xml = PTQConfig::from_string("<ptq><opname_blacklist/></ptq>", "xml", "cfg.xml");
  EXPECT_TRUE(xml.opname_blacklist.empty());
  const PTQConfig info =
      PTQConfig::from_string("opname_blacklist \"lm_head, embed\"\n", "info", "cfg.info");
  EXPECT_EQ(info.opname_blacklist, (std::vector<std::string>{"lm_head", "embed"}));
}

// ---- writing ------------------------------------------------------------------------------------

TEST(PTQConfig, CanonicalJsonRoundTrips) {
  const PTQConfig original = PTQConfig::from_json(json::parse(kRichJson), "rich.json");
  const json canonical = original.to_json();
  const PTQConfig again = PTQConfig::from_json(canonical, "canonical");
  EXPECT_EQ(again, original);
  EXPECT_EQ(again.to_json(), canonical);
  // Canonical: every key present, every built-in algorithm with every parameter.
  for (const char* key : {"version",
                          "mode",
                          "backend",
                          "opname_blacklist",
                          "weight_quant_dtype",
                          "weight_quant_granularity",
                          "group_size",
                          "weight_symmetric",
                          "act_quant_dtype",
                          "act_quant_granularity",
                          "act_symmetric",
                          "act_observer",
                          "act_percentile",
                          "kvcache_quant_dtype",
                          "kvcache_quant_granularity",
                          "outliers_suppression",
                          "precision_recovery",
                          "algo_args",
                          "calibration",
                          "layer_policies"})
    EXPECT_TRUE(canonical.contains(key)) << key;
  for (const auto& [name, args] : PTQConfig::default_algo_args().items())
    for (const auto& item : args.items())
      EXPECT_TRUE(canonical["algo_args"][name].contains(item.key())) << name << "." << item.key();
  // Unset policy fields stay out, so they keep meaning "the config-wide value".
  EXPECT_EQ(canonical["layer_policies"][0],
            json::parse(R"({"pattern": "^model\\.layers\\.0\\.", "skip": true})"));
  EXPECT_NE(again, PTQConfig());
}

TEST(PTQConfig, SaveWritesAtomicallyAndLoadsBack) {
  const fs::path dir = ::ptq::testing::temp_dir("ptq_config_save");
  const PTQConfig original = PTQConfig::from_json(json::parse(kRichJson), "rich.json");
  original.save(dir / "saved.json");
  EXPECT_EQ(PTQConfig::from_file(dir / "saved.json"), original);
  original.save(dir / "saved.json");  // overwriting is fine
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";
  EXPECT_TRUE(contains(error_of([&] { original.save(dir / "missing" / "saved.json"); }),
                       "cannot write config"));
}

TEST(PTQConfig, IntegerForAFloatParameterIsCanonicallyAFloat) {
  const PTQConfig config =
      PTQConfig::from_json(json::parse(R"({"weight_quant_dtype": "int8", "act_quant_dtype": "int8",
                      "outliers_suppression": "smooth", "algo_args": {"smooth_quant": {"alpha": 1}}})"),
                           "cfg.json");
  EXPECT_TRUE(config.to_json()["algo_args"]["smooth_quant"]["alpha"].is_number_float());
  EXPECT_EQ(config.summary(), "W8A8 per-channel sym, static act, SmoothQuant alpha=1.0");
}

// ---- key and type errors ------------------------------------------------------------------------

TEST(PTQConfig, UnknownKeySuggestsTheClosest) {
  EXPECT_EQ(load_error({{"weight_quant_dtyp", "int4"}}),
            "unknown key \"weight_quant_dtyp\" in cfg.json; did you mean \"weight_quant_dtype\"?");
  EXPECT_EQ(
      load_error({{"calibration", {{"sample", 4}}}}),
      "unknown key \"calibration.sample\" in cfg.json; did you mean \"calibration.samples\"?");
  EXPECT_TRUE(contains(load_error({{"layer_policies", {{{"pattern", "x"}, {"group_sise", 64}}}}}),
                       "did you mean \"layer_policies[0].group_size\"?"));
  EXPECT_EQ(load_error({{"algo_args", {{"awq", {{"grd", 4}}}}}}),
            "unknown key \"algo_args.awq.grd\" in cfg.json; did you mean \"algo_args.awq.grid\"?");
  // Nothing close: the message lists the keys instead.
  const std::string far = load_error({{"zzzzzzzz", 1}});
  EXPECT_TRUE(
      contains(far, "unknown key \"zzzzzzzz\" in cfg.json; known keys: \"version\", \"mode\""));
  // INI reports the same way, naming its file.
  EXPECT_EQ(
      error_of([] { PTQConfig::from_string("weight_quant_dtyp = int4\n", "ini", "cfg.ini"); }),
      "unknown key \"weight_quant_dtyp\" in cfg.ini; did you mean \"weight_quant_dtype\"?");
}

// A hostile file's key or value may be huge (the fuzzer's 500 KB keys): the message quotes its start and
// its size, not all of it.
TEST(PTQConfig, HugeUnknownKeysAndValuesAreCutInTheMessage) {
  const std::string huge(200000, 'q');
  const std::string key_error = load_error({{huge, 1}});
  EXPECT_LT(key_error.size(), 2000u) << key_error.substr(0, 300);
  EXPECT_TRUE(contains(key_error, "qqq... (200000 bytes)\" in cfg.json; known keys: \"version\"")) << key_error;
  const std::string value_error = load_error({{"weight_quant_dtype", huge}});
  EXPECT_LT(value_error.size(), 2000u) << value_error.substr(0, 300);
  EXPECT_TRUE(contains(value_error, "qqq... (200000 bytes)\" is not allowed")) << value_error;
}

TEST(PTQConfig, WrongTypesNameKeyAndValue) {
  EXPECT_EQ(load_error({{"group_size", "128"}}),
            "key \"group_size\" in cfg.json: expected an integer, got \"128\"");
  EXPECT_EQ(load_error({{"group_size", 128.5}}),
            "key \"group_size\" in cfg.json: expected an integer, got 128.5");
  EXPECT_EQ(load_error({{"weight_symmetric", "yes"}}),
            "key \"weight_symmetric\" in cfg.json: expected true or false, got \"yes\"");
  EXPECT_EQ(load_error({{"opname_blacklist", "lm_head"}}),
            "key \"opname_blacklist\" in cfg.json: expected a list of strings, got \"lm_head\"");
  EXPECT_EQ(load_error({{"opname_blacklist", {"lm_head", 3}}}),
            "key \"opname_blacklist[1]\" in cfg.json: expected a string, got 3");
  EXPECT_EQ(load_error({{"calibration", 5}}),
            "key \"calibration\" in cfg.json: expected an object, got 5");
  EXPECT_EQ(load_error({{"act_percentile", "high"}}),
            "key \"act_percentile\" in cfg.json: expected a number, got \"high\"");
  EXPECT_EQ(
      load_error(json::parse(R"({"layer_policies": {"pattern": "x"}})")),
      "key \"layer_policies\" in cfg.json: expected a list of objects, got {\"pattern\":\"x\"}");
  EXPECT_EQ(load_error(json::parse(R"({"layer_policies": [["x"]]})")),
            "key \"layer_policies[0]\" in cfg.json: expected an object, got [\"x\"]");
  EXPECT_EQ(load_error({{"algo_args", {{"gptq", {{"act_order", 1}}}}}}),
            "key \"algo_args.gptq.act_order\" in cfg.json: expected true or false, got 1");
  EXPECT_EQ(load_error({{"algo_args", {{"my_plugin", 3}}}}),
            "key \"algo_args.my_plugin\" in cfg.json: expected an object of parameters, got 3");
  EXPECT_TRUE(contains(load_error(json::array()), "cfg.json: a config is an object of keys"));
  // INI values are strings; they are converted by the key's type, with the same wording.
  EXPECT_EQ(error_of([] { PTQConfig::from_string("group_size = 12x\n", "ini", "cfg.ini"); }),
            "key \"group_size\" in cfg.ini: expected an integer, got \"12x\"");
  EXPECT_EQ(error_of([] { PTQConfig::from_string("weight_symmetric = yes\n", "ini", "cfg.ini"); }),
            "key \"weight_symmetric\" in cfg.ini: expected true or false, got \"yes\"");
  EXPECT_EQ(
      error_of([] { PTQConfig::from_string("[algo_args.awq]\ngrid = many\n", "ini", "cfg.ini"); }),
      "key \"algo_args.awq.grid\" in cfg.ini: expected an integer, got \"many\"");
  EXPECT_EQ(error_of([] {
              PTQConfig::from_string("<ptq><calibration><seed>-</seed></calibration></ptq>", "xml",
                                     "cfg.xml");
            }),
            "key \"calibration.seed\" in cfg.xml: expected an integer, got \"-\"");
}

TEST(PTQConfig, BadEnumValuesListTheAllowedOnes) {
  EXPECT_EQ(load_error({{"weight_quant_dtype", "int2"}}),
            "key \"weight_quant_dtype\" in cfg.json: \"int2\" is not allowed; allowed values: "
            "\"int8\", \"int4\", \"int3\", \"none\"");
  EXPECT_EQ(
      load_error({{"act_quant_dtype", "int4"}}),
      "key \"act_quant_dtype\" in cfg.json: \"int4\" is not allowed; allowed values: \"int8\", "
      "\"none\"; did you mean \"int8\"?");
  EXPECT_EQ(load_error({{"weight_quant_granularity", "per_chanel"}}),
            "key \"weight_quant_granularity\" in cfg.json: \"per_chanel\" is not allowed; allowed "
            "values: \"per_channel\", \"per_group\"; did you mean \"per_channel\"?");
  EXPECT_TRUE(contains(load_error({{"act_quant_granularity", "per_channel"}}),
                       "allowed values: \"per_tensor\", \"per_token\""));
  EXPECT_TRUE(contains(load_error({{"kvcache_quant_granularity", "per_tensor"}}),
                       "allowed values: \"per_channel\", \"per_token\""));
  EXPECT_TRUE(contains(load_error({{"backend", "tpu"}}),
                       "allowed values: \"reference\", \"cpu\", \"cuda\", \"auto\""));
  EXPECT_TRUE(
      contains(load_error({{"mode", "train"}}), "allowed values: \"quantize\", \"deploy\""));
  EXPECT_TRUE(contains(load_error({{"act_observer", "max"}}),
                       "allowed values: \"minmax\", \"percentile\", \"mse\""));
  EXPECT_TRUE(contains(load_error({{"outliers_suppression", "smoothquant"}}),
                       "allowed values: \"none\", \"smooth\", \"awq\""));
  EXPECT_TRUE(contains(load_error({{"precision_recovery", "gptqq"}}), "did you mean \"gptq\"?"));
  EXPECT_TRUE(
      contains(load_error({{"mode", 1}}), "key \"mode\" in cfg.json: expected a string, got 1"));
}

// ---- validation rules ---------------------------------------------------------------------------

struct Rule {
  const char* name;
  const char* config;                      // JSON
  std::vector<std::string> message_parts;  // each must appear in the error
};

TEST(PTQConfig, EachValidationRuleNamesKeyAndValue) {
  const std::vector<Rule> rules = {
      {"per-token activations need int8 activations",
       R"({"act_quant_granularity": "per_token"})",
       {"cfg.json: act_quant_granularity \"per_token\" (dynamic) needs act_quant_dtype \"int8\", "
        "got "
        "\"none\""}},
      {"activation-only quantization",
       R"({"weight_quant_dtype": "none", "act_quant_dtype": "int8"})",
       {"act_quant_dtype \"int8\" with weight_quant_dtype \"none\" is activation-only"}},
      {"W8A8 needs per-channel weights",
       R"({"act_quant_dtype": "int8", "weight_quant_granularity": "per_group"})",
       {"W8A8", "needs weight_quant_granularity \"per_channel\", got \"per_group\""}},
      {"AWQ with int8 activations",
       R"({"act_quant_dtype": "int8", "outliers_suppression": "awq"})",
       {"outliers_suppression \"awq\" is for weight-only",
        "act_quant_dtype must be \"none\", got "
        "\"int8\""}},
      {"GPTQ with W8A8",
       R"({"act_quant_dtype": "int8", "precision_recovery": "gptq"})",
       {"precision_recovery \"gptq\" with W8A8"}},
      {"W4A8 needs per-token activations",
       R"({"weight_quant_dtype": "int4", "act_quant_dtype": "int8", "precision_recovery": "gptq"})",
       {"W4A8", "needs act_quant_granularity \"per_token\", got \"per_tensor\""}},
      {"W4A8 needs GPTQ",
       R"({"weight_quant_dtype": "int4", "act_quant_dtype": "int8", "act_quant_granularity": "per_token"})",
       {"W4A8", "needs precision_recovery \"gptq\", got \"none\""}},
      {"group size not a power of two",
       R"({"weight_quant_dtype": "int4", "weight_quant_granularity": "per_group", "group_size": 100})",
       {"weight_quant_granularity \"per_group\" needs group_size to be a power of two >= 16",
        "got 100"}},
      {"group size too small",
       R"({"weight_quant_dtype": "int4", "weight_quant_granularity": "per_group", "group_size": 8})",
       {"power of two >= 16", "got 8"}},
      {"group size not positive",
       R"({"group_size": 0})",
       {"key \"group_size\" in cfg.json: expected a positive integer, got 0"}},
      {"smooth needs int8 activations",
       R"({"outliers_suppression": "smooth"})",
       {"outliers_suppression \"smooth\" needs act_quant_dtype \"int8\", got \"none\"",
        "use \"awq\""}},
      {"int3 needs per-group",
       R"({"weight_quant_dtype": "int3"})",
       {"weight_quant_dtype \"int3\" needs weight_quant_granularity \"per_group\", got "
        "\"per_channel\""}},
      {"int3 is weight-only",
       R"({"weight_quant_dtype": "int3", "weight_quant_granularity": "per_group",
           "act_quant_dtype": "int8", "act_quant_granularity": "per_token"})",
       {"weight_quant_dtype \"int3\" is weight-only", "got \"int8\""}},
      {"int8 activations need symmetric weights",
       R"({"act_quant_dtype": "int8", "weight_symmetric": false})",
       {"int8 activations need weight_symmetric true, got false"}},
      {"per-token activations are symmetric",
       R"({"act_quant_dtype": "int8", "act_quant_granularity": "per_token", "act_symmetric": false})",
       {"act_quant_granularity \"per_token\" (dynamic) is symmetric only", "act_symmetric"}},
      {"per-token KV cache needs int8 KV cache",
       R"({"kvcache_quant_granularity": "per_token"})",
       {"kvcache_quant_granularity \"per_token\" (dynamic) needs kvcache_quant_dtype \"int8\", got "
        "\"none\""}},
      {"AWQ needs quantized weights",
       R"({"weight_quant_dtype": "none", "outliers_suppression": "awq"})",
       {"outliers_suppression \"awq\" needs quantized weights", "weight_quant_dtype is \"none\""}},
      {"GPTQ needs quantized weights",
       R"({"weight_quant_dtype": "none", "precision_recovery": "gptq"})",
       {"precision_recovery \"gptq\" needs quantized weights"}},
      {"percentile out of range",
       R"({"act_percentile": 30})",
       {"key \"act_percentile\" in cfg.json: expected a percentile in (50, 100], got 30"}},
      {"no calibration samples",
       R"({"calibration": {"samples": 0}})",
       {"key \"calibration.samples\" in cfg.json: expected a positive integer, got 0"}},
      {"negative seed", R"({"calibration": {"seed": -1}})", {"key \"calibration.seed\"", "got -1"}},
      {"empty blacklist entry",
       R"({"opname_blacklist": ["lm_head", ""]})",
       {"key \"opname_blacklist[1]\" in cfg.json: an empty entry would match every layer"}},
      {"alpha out of range",
       R"({"act_quant_dtype": "int8", "outliers_suppression": "smooth",
           "algo_args": {"smooth_quant": {"alpha": 1.5}}})",
       {"key \"algo_args.smooth_quant.alpha\" in cfg.json: expected a value in [0, 1], got 1.5"}},
      {"damp_percent zero",
       R"({"algo_args": {"gptq": {"damp_percent": 0}}})",
       {"key \"algo_args.gptq.damp_percent\"", "(0, 1]", "got 0.0"}},
      {"grid as a string",
       R"({"algo_args": {"awq": {"grid": "20"}}})",
       {"key \"algo_args.awq.grid\" in cfg.json: expected an integer, got \"20\""}},
      {"policy without pattern",
       R"({"layer_policies": [{"skip": true}]})",
       {"key \"layer_policies[0].pattern\" in cfg.json: missing or empty"}},
      {"policy sets nothing",
       R"({"layer_policies": [{"pattern": "mlp"}]})",
       {"layer_policies[0] (pattern \"mlp\") sets nothing besides its pattern"}},
      {"policy skips and overrides",
       R"({"layer_policies": [{"pattern": "mlp", "skip": true, "group_size": 64}]})",
       {"layer_policies[0] (pattern \"mlp\") sets skip and scheme fields"}},
      {"two policies with one pattern",
       R"({"layer_policies": [{"pattern": "mlp", "skip": true}, {"pattern": "mlp", "group_size": 64}]})",
       {"layer_policies[0] and layer_policies[1] have the same pattern \"mlp\""}},
      {"bad regex",
       R"({"layer_policies": [{"pattern": "mlp([", "skip": true}]})",
       {"key \"layer_policies[0].pattern\" in cfg.json: \"mlp([\" is not a valid ECMAScript "
        "regex"}},
      {"policy makes W8A8 per-group",
       R"({"act_quant_dtype": "int8", "layer_policies": [{"pattern": "down_proj",
           "weight_quant_granularity": "per_group"}]})",
       {"cfg.json: layer_policies[0] (pattern \"down_proj\"), with the config-wide keys: W8A8",
        "got \"per_group\""}},
      {"policy group size",
       R"({"layer_policies": [{"pattern": "down", "weight_quant_granularity":
           "per_group", "group_size": 48}]})",
       {"layer_policies[0] (pattern \"down\")", "power of two >= 16", "got 48"}},
      {"empty rounding", R"({"rounding": ""})", {"key \"rounding\" is empty"}},
      {"GPTQ rounds itself",
       R"({"weight_quant_dtype": "int4", "weight_quant_granularity": "per_group", "precision_recovery": "gptq",
           "rounding": "rtn_mse"})",
       {"precision_recovery \"gptq\" rounds the weights itself", "(got \"rtn_mse\")"}},
  };
  for (const Rule& rule : rules) {
    SCOPED_TRACE(rule.name);
    const std::string message = load_error(json::parse(rule.config));
    for (const std::string& part : rule.message_parts) EXPECT_TRUE(contains(message, part));
  }
}

TEST(PTQConfig, ValidCombinationsAreAccepted) {
  for (
      const char* config : {
          R"({"weight_quant_dtype": "int4", "act_quant_dtype": "int8",
               "act_quant_granularity": "per_token", "precision_recovery": "gptq"})",
          R"({"act_quant_dtype": "int8", "act_quant_granularity": "per_token",
               "outliers_suppression": "smooth"})",
          R"({"act_quant_dtype": "int8", "act_symmetric": false})",
          R"({"weight_quant_dtype": "none", "kvcache_quant_dtype": "int8",
               "kvcache_quant_granularity": "per_token"})",
          R"({"weight_quant_dtype": "int8", "outliers_suppression": "awq", "precision_recovery": "gptq"})",
          R"({"weight_quant_dtype": "int4", "weight_symmetric": false})",
          R"({"weight_quant_dtype": "none", "weight_quant_granularity": "per_group", "group_size": 100})",
          R"({"mode": "deploy", "calibration": {"dataset": "/nonexistent.txt"}})",
          R"({"algo_args": {"my_plugin": {"anything": [1, 2, {"x": null}]}}})",
          R"({"version": 1, "opname_blacklist": []})",
      }) {
    SCOPED_TRACE(config);
    EXPECT_NO_THROW(PTQConfig::from_json(json::parse(config), "cfg.json"));
  }
}

TEST(PTQConfig, AnyPowerOfTwoGroupSizeFrom16) {
  for (int64_t group : {16, 32, 64, 128, 256, 512, 1024, 4096}) {
    SCOPED_TRACE(group);
    const PTQConfig config = PTQConfig::from_json({{"weight_quant_dtype", "int4"},
                                                   {"weight_quant_granularity", "per_group"},
                                                   {"group_size", group}},
                                                  "cfg.json");
    EXPECT_TRUE(config.group_size_fits(group * 3));
    EXPECT_FALSE(config.group_size_fits(group * 3 + 8));
  }
  PTQConfig per_channel;
  EXPECT_TRUE(per_channel.group_size_fits(4000));
  PTQConfig grouped = PTQConfig::from_json(
      {{"weight_quant_dtype", "int4"}, {"weight_quant_granularity", "per_group"}}, "cfg.json");
  EXPECT_TRUE(grouped.group_size_fits(4096));
  EXPECT_FALSE(grouped.group_size_fits(4000));
  EXPECT_FALSE(grouped.group_size_fits(0));
}

TEST(PTQConfig, ValidateCatchesConfigsEditedInCode) {
  PTQConfig config;
  config.act_quant_dtype = QuantDtype::kInt8;
  config.weight_quant_granularity = QuantGranularity::kPerGroup;
  EXPECT_TRUE(contains(error_of([&] { config.validate("edited"); }), "edited: W8A8"));
  config.weight_quant_granularity = QuantGranularity::kPerChannel;
  config.algo_args = {{"awq", {{"clip_max_shrink", 1.0}}}};
  EXPECT_TRUE(
      contains(error_of([&] { config.validate("edited"); }),
               "key \"algo_args.awq.clip_max_shrink\" in edited: expected a value in [0, 1)"));
}

// ---- versions -----------------------------------------------------------------------------------

TEST(PTQConfig, NewerVersionIsRefusedWithTheFix) {
  const std::string message = load_error({{"version", kPTQConfigVersion + 1}, {"new_key", 1}});
  EXPECT_TRUE(contains(
      message, fmt::format("cfg.json has config format version {}", kPTQConfigVersion + 1)));
  EXPECT_TRUE(
      contains(message, fmt::format("this ptq reads versions up to {}", kPTQConfigVersion)));
  EXPECT_TRUE(contains(message, "use a newer ptq"));
  EXPECT_TRUE(contains(load_error({{"version", 0}}), "key \"version\" in cfg.json"));
  EXPECT_EQ(load_error({{"version", "1"}}),
            "key \"version\" in cfg.json: expected an integer, got \"1\"");
  EXPECT_TRUE(contains(
      error_of([] { PTQConfig::from_string("version = 99\nnew_key = 1\n", "ini", "cfg.ini"); }),
      "cfg.ini has config format version 99"));
}

// ---- layer resolution ---------------------------------------------------------------------------

TEST(PTQConfig, LmHeadIsSkippedByDefaultAndAnEmptyBlacklistQuantizesIt) {
  PTQConfig config;
  const LayerScheme head = config.scheme_for("lm_head");
  EXPECT_TRUE(head.skip);
  EXPECT_FALSE(head.quantized());
  EXPECT_EQ(head.skip_reason, "opname_blacklist entry \"lm_head\"");
  EXPECT_EQ(head.summary(), "skipped (opname_blacklist entry \"lm_head\")");
  EXPECT_FALSE(config.scheme_for("model.layers.0.self_attn.q_proj").skip);

  config = PTQConfig::from_json({{"opname_blacklist", json::array()}}, "cfg.json");
  EXPECT_TRUE(config.scheme_for("lm_head").quantized());

  config = PTQConfig::from_json({{"opname_blacklist", {"mlp.down"}}}, "cfg.json");
  EXPECT_TRUE(config.scheme_for("model.layers.3.mlp.down_proj").skip);  // substring match
  EXPECT_FALSE(config.scheme_for("lm_head").skip);
}

TEST(PTQConfig, LayerPoliciesOverrideAndSkip) {
  const PTQConfig config = PTQConfig::from_json(json::parse(R"({
      "weight_quant_dtype": "int4", "weight_quant_granularity": "per_group", "weight_symmetric": false,
      "layer_policies": [
        {"pattern": "^model\\.layers\\.0\\.", "skip": true},
        {"pattern": "down_proj$", "weight_quant_dtype": "int8", "weight_quant_granularity": "per_channel",
         "weight_symmetric": true},
        {"pattern": "q_proj", "group_size": 32}
      ]})"),
                                                "cfg.json");
  const LayerScheme first = config.scheme_for("model.layers.0.self_attn.k_proj");
  EXPECT_TRUE(first.skip);
  EXPECT_EQ(first.skip_reason, "layer_policies[0] (pattern \"^model\\.layers\\.0\\.\") sets skip");
  EXPECT_EQ(first.policy_index, 0);

  const LayerScheme down = config.scheme_for("model.layers.5.mlp.down_proj");
  EXPECT_FALSE(down.skip);
  EXPECT_EQ(down.policy_index, 1);
  EXPECT_EQ(down.policy_pattern, "down_proj$");
  EXPECT_EQ(down.weight_quant_dtype, QuantDtype::kInt8);
  EXPECT_EQ(down.summary(), "W8A16 per-channel sym");

  const LayerScheme q = config.scheme_for("model.layers.5.self_attn.q_proj");
  EXPECT_EQ(q.weight_quant_dtype, QuantDtype::kInt4);  // from the config-wide keys
  EXPECT_EQ(q.group_size, 32);
  EXPECT_EQ(q.summary(), "W4A16 g32 asym");
  EXPECT_TRUE(q.group_size_fits(4096 + 32));

  const LayerScheme up = config.scheme_for("model.layers.5.mlp.up_proj");
  EXPECT_EQ(up.policy_index, -1);
  EXPECT_EQ(up.summary(), "W4A16 g128 asym");
  EXPECT_FALSE(up.group_size_fits(4096 + 32));
  EXPECT_EQ(config.summary(), "W4A16 g128 asym, RTN, 3 layer policies");
}

TEST(PTQConfig, ALayerMatchedByTwoPoliciesIsAnError) {
  const PTQConfig config = PTQConfig::from_json(json::parse(kRichJson), "rich.json");
  EXPECT_EQ(
      error_of([&] { config.scheme_for("model.layers.0.mlp.down_proj"); }),
      "layer \"model.layers.0.mlp.down_proj\" matches two layer_policies: [0] pattern "
      "\"^model\\.layers\\.0\\.\" and [1] pattern \"down_proj$\"; a layer may match one pattern "
      "only (make the patterns disjoint, e.g. anchor them with ^ and $)");
  EXPECT_NO_THROW(config.scheme_for("model.layers.1.mlp.down_proj"));
}

TEST(PTQConfig, ABlacklistedLayerWithAPolicySchemeIsAnError) {
  const PTQConfig config = PTQConfig::from_json(
      json::parse(R"({"layer_policies": [{"pattern": "head", "weight_quant_dtype": "int4",
                      "weight_quant_granularity": "per_group"}]})"),
      "cfg.json");
  const std::string message = error_of([&] { config.scheme_for("lm_head"); });
  EXPECT_TRUE(contains(message, "layer \"lm_head\" is in opname_blacklist (entry \"lm_head\")"));
  EXPECT_TRUE(contains(message, "layer_policies[0] pattern \"head\""));
  EXPECT_TRUE(contains(message, "opname_blacklist: []"));
  // Skipping a blacklisted layer again is no contradiction.
  const PTQConfig skip = PTQConfig::from_json(
      json::parse(R"({"layer_policies": [{"pattern": "head", "skip": true}]})"), "cfg.json");
  EXPECT_EQ(skip.scheme_for("lm_head").skip_reason, "opname_blacklist entry \"lm_head\"");
}

TEST(PTQConfig, BadRegexInCodeIsReportedByResolution) {
  PTQConfig config;
  LayerPolicy policy;
  policy.pattern = "(unclosed";
  policy.skip = true;
  config.layer_policies.push_back(policy);
  EXPECT_TRUE(contains(error_of([&] { config.scheme_for("x"); }),
                       "\"(unclosed\" is not a valid ECMAScript regex"));
}

// ---- summary and calibration
// ---------------------------------------------------------------------

TEST(PTQConfig, SummaryOfTheRecipes) {
  const auto summary = [](const char* name) {
    return PTQConfig::from_file(configs_dir() / name).summary();
  };
  EXPECT_EQ(summary("w8a16_rtn.json"), "W8A16 per-channel sym, RTN");
  EXPECT_EQ(summary("w4a16_rtn_g128_sym.json"), "W4A16 g128 sym, RTN");
  EXPECT_EQ(summary("w4a16_awq_g128_kv8.json"), "W4A16 g128 asym, AWQ, KV int8 static");
  EXPECT_EQ(summary("w4a16_awq_gptq_g128.json"), "W4A16 g128 asym, AWQ, GPTQ");
  EXPECT_EQ(summary("w3a16_gptq_g128.json"), "W3A16 g128 asym, GPTQ");
  EXPECT_EQ(summary("w8a8_smoothquant_kv8.json"),
            "W8A8 per-channel sym, static act, SmoothQuant alpha=0.5, KV int8 static");
  EXPECT_EQ(summary("w8a8_dynamic.json"), "W8A8 per-channel sym, dynamic act, RTN");
  EXPECT_EQ(summary("kv8.json"), "KV int8 static");
  PTQConfig nothing;
  nothing.weight_quant_dtype = QuantDtype::kNone;
  nothing.mode = PTQMode::kDeploy;
  EXPECT_EQ(nothing.summary(), "no quantization, deploy");
}

TEST(PTQConfig, CalibrationIsNeededOnlyWhenSomethingIsCalibrated) {
  const auto needs = [](const char* name) {
    return PTQConfig::from_file(configs_dir() / name).needs_calibration();
  };
  EXPECT_FALSE(needs("w8a16_rtn.json"));
  EXPECT_FALSE(needs("w4a16_rtn_g128.json"));
  EXPECT_FALSE(needs("w8a8_dynamic.json"));
  EXPECT_TRUE(needs("w8a8_smoothquant.json"));
  EXPECT_TRUE(needs("kv8.json"));
  EXPECT_TRUE(needs("w4a16_awq_g128.json"));
  EXPECT_TRUE(needs("w3a16_gptq_g128.json"));
  PTQConfig deploy = PTQConfig::from_file(configs_dir() / "w4a16_awq_g128.json");
  deploy.mode = PTQMode::kDeploy;
  EXPECT_FALSE(deploy.needs_calibration());  // DEPLOY ignores calibration
  PTQConfig policy_static;
  LayerPolicy static_o_proj;
  static_o_proj.pattern = "o_proj";
  static_o_proj.act_quant_dtype = QuantDtype::kInt8;  // static per-tensor from the config-wide keys
  policy_static.layer_policies.push_back(static_o_proj);
  EXPECT_NO_THROW(policy_static.validate());
  EXPECT_TRUE(policy_static.needs_calibration());
}

// ---- files --------------------------------------------------------------------------------------

TEST(PTQConfig, FileErrorsNameTheFile) {
  const fs::path dir = ::ptq::testing::temp_dir("ptq_config_files");
  EXPECT_TRUE(
      contains(error_of([&] { PTQConfig::from_file(write_file(dir / "cfg.yaml", "a: 1")); }),
               "unknown extension \".yaml\"; allowed extensions: .json, .ini, .xml, .info"));
  EXPECT_TRUE(contains(error_of([&] { PTQConfig::from_file(dir / "absent.json"); }),
                       "cannot read config " + (dir / "absent.json").string() + ": no such file"));
  EXPECT_TRUE(
      contains(error_of([&] { PTQConfig::from_file(write_file(dir / "bad.json", "{\"mode\": ")); }),
               "cannot parse " + (dir / "bad.json").string() + " as JSON"));
  EXPECT_TRUE(contains(error_of([&] {
                         PTQConfig::from_file(
                             write_file(dir / "bad.ini", "mode = quantize\njunk\n"));
                       }),
                       "as ini: line 2: '=' character not found in line"));
  EXPECT_TRUE(contains(error_of([] { PTQConfig::from_string("<config/>", "xml", "cfg.xml"); }),
                       "cfg.xml: an XML config has one root element <ptq>, got <config>"));
  EXPECT_TRUE(contains(error_of([] {
                         PTQConfig::from_string("<ptq><group_size v=\"1\">64</group_size></ptq>",
                                                "xml", "cfg.xml");
                       }),
                       "cfg.xml: XML attributes are not read (on <group_size>)"));
  EXPECT_EQ(error_of([] {
              PTQConfig::from_string("<ptq><mode>deploy</mode><mode>quantize</mode></ptq>", "xml",
                                     "cfg.xml");
            }),
            "key \"mode\" appears twice in cfg.xml");
  EXPECT_TRUE(contains(error_of([] { PTQConfig::from_string("{}", "yaml", "cfg"); }),
                       "unknown config format \"yaml\""));
  EXPECT_TRUE(contains(
      error_of([] {
        PTQConfig::from_string("<ptq><opname_blacklist><entry>x</entry></opname_blacklist></ptq>",
                               "xml", "cfg.xml");
      }),
      "key \"opname_blacklist\" in cfg.xml: list entries are written as <item> elements"));
}

}  // namespace
}  // namespace ptq
