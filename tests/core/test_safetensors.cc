// Safetensors reading and writing: round trips of every dtype, zero-copy mapping, sharded
// checkpoints, one hand-corrupted file per validation rule, and atomic writes.
#include <signal.h>
#include <sys/resource.h>
#include <torch/types.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "framework/error.h"
#include "framework/safetensors.h"
#include "test_util.h"

namespace {
using ::ptq::testing::error_of;
using ::ptq::testing::expect_error;
using ::ptq::testing::write_bytes;
using ::ptq::testing::read_bytes;
namespace fs = std::filesystem;
using ptq::NamedTensors;
using ptq::SafetensorsFile;
using ptq::SafetensorsShardWriter;
using ptq::TensorStore;

// A hand-made file: little-endian header length, `header` as given (no padding), then `data_size`
// zero bytes of data.
fs::path write_raw(const fs::path& path, const std::string& header, size_t data_size) {
  const uint64_t n = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_bytes(path, bytes + header + std::string(data_size, '\0'));
  return path;
}

std::string header_of(const fs::path& path) {
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return bytes.substr(8, n);
}

// Bit-exact equality (NaN payloads, -0.0 and bf16 bits included).
bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

std::vector<std::string> files_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

NamedTensors every_dtype() {
  torch::manual_seed(7);
  torch::Tensor special = torch::tensor(
      {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
       std::numeric_limits<float>::quiet_NaN(), 1e-40f /* denormal */});
  return {
      {"f32", torch::cat({torch::randn({17}), special})},
      {"f16", torch::randn({3, 5}).to(torch::kFloat16)},
      {"bf16", torch::cat({torch::randn({7}), special}).to(torch::kBFloat16)},
      {"f64", torch::randn({2, 3, 1}, torch::kFloat64)},
      {"i8", torch::randint(-128, 128, {11}, torch::kInt8)},
      {"u8", torch::randint(0, 256, {2, 7}, torch::kUInt8)},
      {"i16", torch::randint(-32768, 32768, {5}, torch::kInt16)},
      {"i32", torch::randint(std::numeric_limits<int32_t>::min(),
                             std::numeric_limits<int32_t>::max(), {9}, torch::kInt32)},
      {"i64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0},
                             std::numeric_limits<int64_t>::max()})},
      {"bool", torch::tensor({true, false, false, true, true})},
  };
}

TEST(Safetensors, DtypeNamesMapBothWays) {
  const std::vector<std::pair<std::string, torch::ScalarType>> pairs = {
      {"BOOL", torch::kBool},   {"U8", torch::kUInt8},      {"I8", torch::kInt8},
      {"I16", torch::kInt16},   {"I32", torch::kInt32},     {"I64", torch::kInt64},
      {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16}, {"F32", torch::kFloat32},
      {"F64", torch::kFloat64}};
  for (const auto& [name, dtype] : pairs) {
    EXPECT_EQ(ptq::safetensors_dtype_to_torch(name), dtype);
    EXPECT_EQ(ptq::torch_dtype_to_safetensors(dtype), name);
    EXPECT_EQ(ptq::safetensors_dtype_size(name), c10::elementSize(dtype));
  }
  expect_error([] { ptq::safetensors_dtype_to_torch("Q4_K"); },
               {"unknown safetensors dtype \"Q4_K\""});
  expect_error([] { ptq::torch_dtype_to_safetensors(torch::kComplexFloat); }, {"cannot be stored"});
  EXPECT_EQ(ptq::safetensors_dtype_size("F8_E4M3"), 1u);
  EXPECT_EQ(ptq::safetensors_dtype_size("nope"), 0u);
}

TEST(Safetensors, RoundTripsEveryDtypeBitExactly) {
  const fs::path path = ptq::testing::temp_dir("st_dtypes") / "all.safetensors";
  const NamedTensors tensors = every_dtype();
  ptq::write_safetensors(path, tensors);
  SafetensorsFile file(path);
  ASSERT_EQ(file.size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(file.has(name));
    EXPECT_EQ(file.info(name).dtype, expected.scalar_type());
    EXPECT_EQ(file.info(name).dtype_name, ptq::torch_dtype_to_safetensors(expected.scalar_type()));
    EXPECT_EQ(file.info(name).shape, expected.sizes().vec());
    torch::Tensor actual = file.tensor(name);
    EXPECT_TRUE(same_bits(actual, expected));
  }
  // Written without metadata: no "__metadata__" entry; the header is padded to a multiple of 8.
  EXPECT_TRUE(file.metadata().empty());
  EXPECT_EQ(header_of(path).find("__metadata__"), std::string::npos);
  EXPECT_EQ(header_of(path).size() % 8, 0u);
  EXPECT_EQ(file.data_offset() % 8, 0u);
}

TEST(Safetensors, EmptyTensorsAndScalars) {
  const fs::path path = ptq::testing::temp_dir("st_empty") / "empty.safetensors";
  const NamedTensors tensors = {{"empty", torch::empty({0})},
                                {"empty_2d", torch::empty({3, 0}, torch::kBFloat16)},
                                {"scalar_f32", torch::tensor(3.5f)},
                                {"scalar_i64", torch::tensor(int64_t{-42})},
                                {"scalar_bool", torch::tensor(true)}};
  ptq::write_safetensors(path, tensors);
  SafetensorsFile file(path);
  EXPECT_EQ(file.tensor("empty").sizes().vec(), std::vector<int64_t>{0});
  EXPECT_EQ(file.tensor("empty_2d").sizes().vec(), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(file.info("empty_2d").nbytes(), 0u);
  EXPECT_EQ(file.tensor("scalar_f32").dim(), 0);
  EXPECT_TRUE(file.info("scalar_f32").shape.empty());
  EXPECT_EQ(file.tensor("scalar_f32").item<float>(), 3.5f);
  EXPECT_EQ(file.tensor("scalar_i64").item<int64_t>(), -42);
  EXPECT_EQ(file.tensor("scalar_bool").item<bool>(), true);

  // A file with no tensors at all is valid too.
  const fs::path none = path.parent_path() / "none.safetensors";
  ptq::write_safetensors(none, {});
  EXPECT_EQ(SafetensorsFile(none).size(), 0u);
}

TEST(Safetensors, MetadataRoundTrips) {
  const fs::path path = ptq::testing::temp_dir("st_metadata") / "meta.safetensors";
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"quantization", "{\"bits\": 4}"},
                                                       {"note", "unicode \xc3\xa9 and \"quotes\""}};
  ptq::write_safetensors(path, {{"w", torch::ones({2})}}, metadata);
  SafetensorsFile file(path);
  EXPECT_EQ(file.metadata(), metadata);
  EXPECT_FALSE(file.has("__metadata__"));
  EXPECT_EQ(file.names(), std::vector<std::string>{"w"});

  // Metadata and no tensors (the reference once wrote an unreadable header for this).
  const fs::path only_metadata = path.parent_path() / "only_metadata.safetensors";
  ptq::write_safetensors(only_metadata, {}, metadata);
  EXPECT_EQ(SafetensorsFile(only_metadata).metadata(), metadata);
  EXPECT_EQ(SafetensorsFile(only_metadata).size(), 0u);

  // "__metadata__" is reserved: a tensor of that name would make the file unreadable.
  expect_error(
      [&] {
        ptq::write_safetensors(path, {{"__metadata__", torch::ones({1})}});
      },
      {path.string(), "\"__metadata__\" is reserved"});
}

TEST(Safetensors, TensorsAreZeroCopyViewsThatKeepTheMappingAlive) {
  const fs::path path = ptq::testing::temp_dir("st_zero_copy") / "z.safetensors";
  ptq::write_safetensors(path, every_dtype());
  const std::string before = read_bytes(path);
  torch::Tensor kept;
  {
    SafetensorsFile file(path);
    const ptq::MappedRange range = file.mapped_range();
    EXPECT_EQ(range.size, before.size());
    for (const auto& name : file.names()) {
      SCOPED_TRACE(name);
      torch::Tensor t = file.tensor(name);
      EXPECT_TRUE(range.contains(t.data_ptr()));
      // The writer aligns every tensor, so none needed the copying fallback.
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % t.element_size(), 0u);
      EXPECT_EQ(static_cast<const uint8_t*>(t.data_ptr()),
                range.data + file.data_offset() + file.info(name).data_begin);
    }
    kept = file.tensor("f64");
  }
  // The file object is gone; the view still reads the mapping, and writing to it (private mapping)
  // neither crashes nor reaches the file.
  const torch::Tensor expected = every_dtype()[3].second;
  EXPECT_TRUE(same_bits(kept, expected));
  kept.fill_(123.0);
  EXPECT_EQ(kept.sum().item<double>(), 123.0 * 6);
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_TRUE(same_bits(SafetensorsFile(path).tensor("f64"), expected));
}

TEST(Safetensors, WriterOrdersDataByAlignmentAndKeepsTheGivenOrderWithin) {
  const fs::path path = ptq::testing::temp_dir("st_order") / "order.safetensors";
  // Odd-length 1- and 2-byte tensors first would misalign the 4- and 8-byte ones after them.
  ptq::write_safetensors(path, {{"z_u8", torch::zeros({3}, torch::kUInt8)},
                                {"b_bf16", torch::zeros({3}, torch::kBFloat16)},
                                {"a_f32", torch::zeros({3})},
                                {"y_i64", torch::zeros({1}, torch::kInt64)},
                                {"c_bf16", torch::zeros({1}, torch::kBFloat16)},
                                {"x_f32", torch::zeros({2})}});
  SafetensorsFile file(path);
  std::vector<std::pair<uint64_t, std::string>> order;
  for (const auto& name : file.names()) order.emplace_back(file.info(name).data_begin, name);
  std::sort(order.begin(), order.end());
  std::vector<std::string> names;
  for (const auto& item : order) names.push_back(item.second);
  EXPECT_EQ(names,
            (std::vector<std::string>{"y_i64", "a_f32", "x_f32", "b_bf16", "c_bf16", "z_u8"}));
  // The header lists tensors in data order.
  const std::string header = header_of(path);
  EXPECT_LT(header.find("y_i64"), header.find("a_f32"));
  EXPECT_LT(header.find("c_bf16"), header.find("z_u8"));
}

TEST(Safetensors, MisalignedDataIsCopied) {
  // Legal in the format but never written by us: an F32 at data offset 1.
  const fs::path path = ptq::testing::temp_dir("st_misaligned") / "m.safetensors";
  std::string header =
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  const float value = 2.75f;
  bytes += header + std::string(1, '\x07') + std::string(reinterpret_cast<const char*>(&value), 4);
  write_bytes(path, bytes);
  SafetensorsFile file(path);
  torch::Tensor b = file.tensor("b");
  EXPECT_FALSE(file.mapped_range().contains(b.data_ptr()));
  EXPECT_EQ(b.item<float>(), 2.75f);
  EXPECT_EQ(file.tensor("a").item<uint8_t>(), 7);
  EXPECT_TRUE(file.mapped_range().contains(file.tensor("a").data_ptr()));
}

TEST(Safetensors, NonContiguousTensorsAreWrittenContiguous) {
  const fs::path path = ptq::testing::temp_dir("st_strided") / "t.safetensors";
  torch::Tensor base = torch::arange(24, torch::kFloat32).reshape({4, 6});
  torch::Tensor transposed = base.t();
  torch::Tensor sliced = base.index({torch::indexing::Slice(), torch::indexing::Slice(1, 5, 2)});
  torch::Tensor expanded = torch::tensor({1.0f, 2.0f}).expand({3, 2});
  ptq::write_safetensors(path, {{"t", transposed}, {"s", sliced}, {"e", expanded}});
  SafetensorsFile file(path);
  EXPECT_TRUE(torch::equal(file.tensor("t"), transposed));
  EXPECT_TRUE(torch::equal(file.tensor("s"), sliced));
  EXPECT_TRUE(torch::equal(file.tensor("e"), expanded));
}

// ---- validation: one hand-corrupted file per rule ----------------------------------------------

class SafetensorsValidation : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ptq::testing::temp_dir("st_validation"); }
  // Writes `header` (+ `data_size` zero bytes) to a file named after the case and expects opening
  // it to fail with a message naming the file and containing `reason`.
  void expect_rejected(const std::string& name, const std::string& header, size_t data_size,
                       const std::vector<std::string>& reason) {
    const fs::path path = write_raw(dir_ / (name + ".safetensors"), header, data_size);
    std::vector<std::string> parts = reason;
    parts.push_back(path.string());
    expect_error([&] { SafetensorsFile file(path); }, parts);
  }
  fs::path dir_;
};

TEST_F(SafetensorsValidation, TruncatedFile) {
  const fs::path path = dir_ / "short.safetensors";
  write_bytes(path, "abcde");
  expect_error([&] { SafetensorsFile file(path); }, {path.string(), "truncated", "5 bytes"});
  write_bytes(path, "");
  expect_error([&] { SafetensorsFile file(path); }, {path.string(), "truncated", "0 bytes"});
}

TEST_F(SafetensorsValidation, HeaderLengthPastTheEndOfTheFile) {
  const fs::path path = dir_ / "past_end.safetensors";
  uint64_t n = 1000;
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_bytes(path, bytes + "{}");
  expect_error([&] { SafetensorsFile file(path); },
               {path.string(), "header length 1000", "past the end of the file"});
}

TEST_F(SafetensorsValidation, AbsurdHeaderLengthIsRejectedBeforeReading) {
  const fs::path path = dir_ / "huge.safetensors";
  uint64_t n =
      200'000'000;  // the file is tiny: checking the limit first means nothing is read or allocated
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_bytes(path, bytes + "{}");
  expect_error([&] { SafetensorsFile file(path); },
               {path.string(), "200000000", "exceeds the limit"});
  // So is a text file mistaken for a checkpoint (its first 8 bytes read as a huge number).
  write_bytes(path, "this is not a safetensors file at all");
  expect_error([&] { SafetensorsFile file(path); }, {path.string(), "exceeds the limit"});
}

TEST_F(SafetensorsValidation, HeaderNotJson) {
  expect_rejected("not_json", "{\"a\": nope}", 0, {"header is not valid JSON"});
  expect_rejected("invalid_utf8", "{\"\xff\xfe\": 1}", 0, {"header is not valid JSON"});
  expect_rejected("trailing_garbage", "{} x", 0, {"header is not valid JSON"});
}

TEST_F(SafetensorsValidation, HeaderNotAnObject) {
  expect_rejected("array", "[1, 2, 3]", 0, {"header is not a JSON object"});
  expect_rejected("empty_header", "", 0, {"header is not a JSON object", "empty header"});
  expect_rejected("leading_space", " {}", 0, {"header is not a JSON object"});
}

TEST_F(SafetensorsValidation, EntryNotAnObject) {
  expect_rejected("entry_array", R"({"w": [1, 2]})", 0, {"tensor \"w\"", "expected an object"});
}

TEST_F(SafetensorsValidation, MissingOrMalformedDtype) {
  expect_rejected("no_dtype", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4,
                  {"tensor \"w\"", "missing \"dtype\""});
  expect_rejected("dtype_number", R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4,
                  {"tensor \"w\"", "\"dtype\" is a number"});
  expect_rejected("dtype_unknown", R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}})", 4,
                  {"tensor \"w\"", "unknown dtype \"Q4\""});
}

TEST_F(SafetensorsValidation, MissingOrMalformedShape) {
  expect_rejected("no_shape", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4,
                  {"tensor \"w\"", "missing \"shape\""});
  expect_rejected("shape_string", R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", 4,
                  {"tensor \"w\"", "\"shape\" is a string"});
  expect_rejected("shape_negative", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
                  {"tensor \"w\"", "shape [-1]", "non-negative integers"});
  expect_rejected("shape_float", R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4,
                  {"tensor \"w\"", "non-negative integers"});
  expect_rejected("shape_overflow",
                  R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})",
                  4, {"tensor \"w\"", "overflows"});
}

TEST_F(SafetensorsValidation, MissingOrMalformedDataOffsets) {
  expect_rejected("no_offsets", R"({"w":{"dtype":"F32","shape":[1]}})", 4,
                  {"tensor \"w\"", "missing \"data_offsets\""});
  expect_rejected("one_offset", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4,
                  {"tensor \"w\"", "\"data_offsets\" is an array [4]", "expected [begin, end]"});
  expect_rejected("negative_offset", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})",
                  4, {"tensor \"w\"", "expected [begin, end]"});
}

TEST_F(SafetensorsValidation, OffsetsPastTheEndOfTheData) {
  expect_rejected("past_data", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8,
                  {"tensor \"w\"", "[0, 16]", "past the end of the data section (8 bytes)"});
}

TEST_F(SafetensorsValidation, BeginAfterEnd) {
  expect_rejected("reversed", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8,
                  {"tensor \"w\"", "[8, 4] begin after they end"});
}

TEST_F(SafetensorsValidation, ShapeTimesDtypeSizeMustMatchTheByteLength) {
  expect_rejected("size_mismatch", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
                  {"tensor \"w\"", "needs 12 bytes", "span 8"});
  expect_rejected("size_mismatch_bf16",
                  R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})", 16,
                  {"tensor \"w\"", "BF16", "needs 8 bytes"});
}

TEST_F(SafetensorsValidation, OverlappingTensors) {
  expect_rejected(
      "overlap",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12, {"\"a\" [0, 8]", "\"b\" [4, 12]", "overlap"});
  // The same bytes under two names.
  expect_rejected(
      "aliased",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
      4, {"overlap"});
}

TEST_F(SafetensorsValidation, GapsAreRejectedLikeTheReference) {
  expect_rejected(
      "gap",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
      12, {"4 unused bytes", "before tensor \"b\"", "\"a\" ends at 4"});
  expect_rejected("gap_at_start", R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8,
                  {"4 unused bytes", "before tensor \"b\""});
  expect_rejected("trailing", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8,
                  {"data section has 8 bytes", "cover only 4", "metadata incomplete buffer"});
}

TEST_F(SafetensorsValidation, DuplicateTensorNames) {
  expect_rejected(
      "duplicate",
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      8, {"duplicate tensor name \"w\""});
  expect_rejected("duplicate_field",
                  R"({"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", 4,
                  {"duplicate key \"dtype\" inside \"w\""});
}

TEST_F(SafetensorsValidation, MetadataMustBeAStringMap) {
  expect_rejected("metadata_number", R"({"__metadata__":{"step":3}})", 0,
                  {"\"__metadata__\" key \"step\"", "expected a string"});
  expect_rejected("metadata_array", R"({"__metadata__":["a"]})", 0,
                  {"\"__metadata__\" is an array"});
}

TEST_F(SafetensorsValidation, MissingTensorNamesTensorAndFile) {
  const fs::path path = write_raw(dir_ / "ok.safetensors",
                                  R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  SafetensorsFile file(path);
  expect_error([&] { file.tensor("nope"); }, {path.string(), "no tensor \"nope\""});
  expect_error([&] { file.info("nope"); }, {path.string(), "no tensor \"nope\""});
}

TEST_F(SafetensorsValidation, DtypesTorchLacksOpenButCannotBeRead) {
  // An F8 tensor (FP8 checkpoints) next to an F32 one: the file opens and the F32 is readable; the
  // F8 one is readable from LibTorch 2.1 on, and refused with a reason before.
  const fs::path path = write_raw(
      dir_ / "f8.safetensors",
      R"({"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      8);
  SafetensorsFile file(path);
  EXPECT_EQ(file.info("q").dtype_name, "F8_E4M3");
  EXPECT_EQ(file.tensor("w").item<float>(), 0.0f);
  if (file.info("q").dtype != torch::ScalarType::Undefined) {
    EXPECT_EQ(file.tensor("q").sizes().vec(), std::vector<int64_t>{4});
    EXPECT_EQ(ptq::torch_dtype_to_safetensors(file.info("q").dtype), "F8_E4M3");
    return;
  }
  expect_error([&] { file.tensor("q"); },
               {path.string(), "tensor \"q\"", "F8_E4M3", "cannot represent"});
}

// ---- checkpoints: sharded and single -----------------------------------------------------------

NamedTensors numbered_tensors(int count, int64_t floats_each) {
  NamedTensors tensors;
  for (int i = 0; i < count; ++i)
    tensors.emplace_back(fmt::format("model.layers.{}.weight", i),
                         torch::full({floats_each}, float(i)));
  return tensors;
}

TEST(SafetensorsCheckpoint, ShardedWriteAndReadThroughTheIndex) {
  const fs::path dir = ptq::testing::temp_dir("st_sharded");
  const NamedTensors tensors = numbered_tensors(7, 100);  // 400 bytes each
  {
    SafetensorsShardWriter writer(dir, /*max_shard_bytes=*/1000, {{"producer", "ptq"}});
    for (const auto& [name, tensor] : tensors) writer.add(name, tensor);
    // 2 + 2 + 2 written so far, one pending; a tensor larger than the limit gets a shard of its
    // own.
    writer.add("big", torch::ones({300}, torch::kBFloat16));  // 600 bytes: 400 + 600 = 1000 fits
    writer.add("huge", torch::ones({1000}));                  // 4000 bytes > limit
    writer.add("tail", torch::ones({1}, torch::kInt8));
    EXPECT_EQ(writer.num_tensors(), 10u);
    EXPECT_EQ(writer.total_bytes(), 7u * 400 + 600 + 4000 + 1);
    const std::vector<fs::path> written = writer.finish();
    ASSERT_EQ(written.size(), 7u);
    EXPECT_EQ(written.back().filename(), "model.safetensors.index.json");
    EXPECT_EQ(written[0].filename(), "model-00001-of-00006.safetensors");
  }
  EXPECT_EQ(files_in(dir),
            (std::vector<std::string>{
                "model-00001-of-00006.safetensors", "model-00002-of-00006.safetensors",
                "model-00003-of-00006.safetensors", "model-00004-of-00006.safetensors",
                "model-00005-of-00006.safetensors", "model-00006-of-00006.safetensors",
                "model.safetensors.index.json"}));
  const nlohmann::json index =
      nlohmann::json::parse(read_bytes(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), 7u * 400 + 600 + 4000 + 1);
  EXPECT_EQ(index["weight_map"].size(), 10u);
  EXPECT_EQ(index["weight_map"]["model.layers.0.weight"], "model-00001-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["big"], "model-00004-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["huge"], "model-00005-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["tail"], "model-00006-of-00006.safetensors");

  for (const fs::path& path : {dir, dir / "model.safetensors.index.json"}) {
    SCOPED_TRACE(path.string());
    TensorStore store = TensorStore::open(path);
    EXPECT_TRUE(store.is_sharded());
    EXPECT_EQ(store.size(), 10u);
    EXPECT_EQ(store.files().size(), 6u);
    for (const auto& [name, tensor] : tensors) {
      EXPECT_TRUE(same_bits(store.tensor(name), tensor)) << name;
      EXPECT_TRUE(store.file_of(name).mapped_range().contains(store.tensor(name).data_ptr()));
    }
    EXPECT_EQ(store.info("huge").shape, std::vector<int64_t>{1000});
    EXPECT_EQ(store.file_of("huge").path().filename(), "model-00005-of-00006.safetensors");
    EXPECT_EQ(store.metadata().at("producer"), "ptq");
    EXPECT_EQ(store.metadata().at("format"), "pt");  // added for transformers
    expect_error([&] { store.tensor("missing"); }, {path.string(), "no tensor \"missing\""});
  }
  // A shard opens on its own too.
  TensorStore shard = TensorStore::open(dir / "model-00005-of-00006.safetensors");
  EXPECT_FALSE(shard.is_sharded());
  EXPECT_EQ(shard.names(), std::vector<std::string>{"huge"});
}

TEST(SafetensorsCheckpoint, OneShardIsASingleModelSafetensorsAndStaleFilesGo) {
  const fs::path dir = ptq::testing::temp_dir("st_single");
  {
    SafetensorsShardWriter writer(dir, 1000);
    for (const auto& [name, tensor] : numbered_tensors(5, 100)) writer.add(name, tensor);
    writer.finish();
  }
  ASSERT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  write_bytes(dir / "config.json", "{}");  // not ours: must survive
  {
    SafetensorsShardWriter writer(dir);
    for (const auto& [name, tensor] : numbered_tensors(2, 10)) writer.add(name, tensor);
    EXPECT_EQ(writer.finish(), std::vector<fs::path>{dir / "model.safetensors"});
  }
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"config.json", "model.safetensors"}));
  TensorStore store = TensorStore::open(dir);
  EXPECT_FALSE(store.is_sharded());
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.tensor("model.layers.1.weight").sum().item<float>(), 10.0f);
  expect_error([&] { store.info("lm_head.weight"); },
               {dir.string(), "no tensor \"lm_head.weight\""});

  // An empty checkpoint is one valid, empty model.safetensors.
  const fs::path empty_dir = ptq::testing::temp_dir("st_single_empty");
  SafetensorsShardWriter(empty_dir).finish();
  EXPECT_EQ(TensorStore::open(empty_dir).size(), 0u);
}

TEST(SafetensorsCheckpoint, IndexNamingATensorItsShardLacks) {
  const fs::path dir = ptq::testing::temp_dir("st_index_ghost");
  {
    SafetensorsShardWriter writer(dir, 400);
    for (const auto& [name, tensor] : numbered_tensors(2, 100)) writer.add(name, tensor);
    writer.finish();
  }
  const fs::path index_path = dir / "model.safetensors.index.json";
  nlohmann::json index = nlohmann::json::parse(read_bytes(index_path));
  index["weight_map"]["ghost.weight"] = "model-00002-of-00002.safetensors";
  write_bytes(index_path, index.dump());
  expect_error([&] { TensorStore::open(dir); },
               {index_path.string(), "tensor \"ghost.weight\"",
                (dir / "model-00002-of-00002.safetensors").string(), "does not contain it"});

  index["weight_map"].erase("ghost.weight");
  index["weight_map"]["model.layers.0.weight"] = "model-00009-of-00009.safetensors";
  write_bytes(index_path, index.dump());
  expect_error([&] { TensorStore::open(dir); },
               {index_path.string(), "model-00009-of-00009.safetensors", "does not exist"});

  index["weight_map"]["model.layers.0.weight"] = "../elsewhere.safetensors";
  write_bytes(index_path, index.dump());
  expect_error([&] { TensorStore::open(dir); },
               {index_path.string(), "expected a shard file name inside the folder"});

  write_bytes(index_path, R"({"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}})");
  expect_error([&] { TensorStore::open(dir); },
               {index_path.string(), "duplicate key \"a\" inside \"weight_map\""});

  write_bytes(index_path, R"({"metadata": {}})");
  expect_error([&] { TensorStore::open(dir); }, {index_path.string(), "\"weight_map\""});
}

TEST(SafetensorsCheckpoint, OpenRejectsFoldersWithoutACheckpoint) {
  const fs::path dir = ptq::testing::temp_dir("st_no_checkpoint");
  expect_error([&] { TensorStore::open(dir); },
               {dir.string(), "neither model.safetensors.index.json nor model.safetensors"});
  ptq::write_safetensors(dir / "consolidated.safetensors", {{"w", torch::ones({1})}});
  expect_error([&] { TensorStore::open(dir); }, {"consolidated.safetensors"});
  EXPECT_EQ(TensorStore::open(dir / "consolidated.safetensors").size(), 1u);
  expect_error([&] { TensorStore::open(dir / "absent"); },
               {(dir / "absent").string(), "no such file or folder"});
}

// ---- atomic writes -----------------------------------------------------------------------------

TEST(SafetensorsWriter, AFailingWriteLeavesNoFileAndNoTemporary) {
  const fs::path dir = ptq::testing::temp_dir("st_atomic");
  const fs::path path = dir / "model.safetensors";
  expect_error(
      [&] {
        ptq::write_safetensors(
            path, {{"ok", torch::ones({4})}, {"z", torch::ones({2}, torch::kComplexFloat)}});
      },
      {path.string(), "tensor \"z\"", "cannot be stored"});
  EXPECT_TRUE(files_in(dir).empty());

  // A failure replaces nothing: the earlier file stays as it was.
  ptq::write_safetensors(path, {{"old", torch::ones({4})}});
  const std::string before = read_bytes(path);
  expect_error(
      [&] {
        ptq::write_safetensors(path, {{"a", torch::ones({1})}, {"a", torch::ones({1})}});
      },
      {path.string(), "tensor \"a\" is given twice"});
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(files_in(dir), std::vector<std::string>{"model.safetensors"});
}

TEST(SafetensorsWriter, AFailureHalfwayThroughTheDataRemovesTheTemporary) {
  // RLIMIT_FSIZE makes write() fail with EFBIG once the file reaches 4 KiB: a real mid-write
  // failure.
  const fs::path dir = ptq::testing::temp_dir("st_atomic_midway");
  const fs::path path = dir / "model.safetensors";
  ptq::write_safetensors(path, {{"old", torch::ones({4})}});
  const std::string before = read_bytes(path);
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* previous_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  const std::string message = error_of([&] {
    ptq::write_safetensors(path, {{"big", torch::ones({100000})}});
  });
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, previous_handler);
  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_NE(message.find("model.safetensors.tmp."), std::string::npos) << message;
  EXPECT_EQ(files_in(dir), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(read_bytes(path), before);
}

TEST(SafetensorsWriter, AnAbandonedShardWriterRemovesItsTemporaries) {
  const fs::path dir = ptq::testing::temp_dir("st_abandoned");
  {
    SafetensorsShardWriter writer(dir, 400);
    writer.add("a", torch::ones({100}));  // full: written to a temporary at once
    writer.add("b", torch::ones({100}));
    EXPECT_EQ(files_in(dir).size(), 2u);  // two temporaries, nothing final
    for (const auto& name : files_in(dir)) EXPECT_NE(name.find(".tmp."), std::string::npos) << name;
    // A rejected tensor leaves the writer as it was.
    expect_error([&] { writer.add("c", torch::ones({2}, torch::kComplexDouble)); },
                 {dir.string(), "tensor \"c\""});
    expect_error([&] { writer.add("a", torch::ones({1})); },
                 {dir.string(), "tensor \"a\" was already added"});
    EXPECT_EQ(writer.num_tensors(), 2u);
  }
  EXPECT_TRUE(files_in(dir).empty());
}

// ---- the shared model --------------------------------------------------------------------------

TEST(SafetensorsSharedModel, OpensPtqSmall32m) {
  PTQ_REQUIRE_SHARED_DATA();
  const fs::path dir = ptq::testing::shared_data_dir() / "models" / "ptq-small-32m";
  if (!fs::exists(dir / "model.safetensors")) GTEST_SKIP() << dir << "/model.safetensors not found";
  TensorStore store = TensorStore::open(dir);
  // 8 decoder layers x 9 tensors (4 attention projections, 3 MLP projections, 2 norms), the
  // embedding, the final norm and an untied lm_head.
  EXPECT_EQ(store.size(), 8u * 9 + 3);
  EXPECT_FALSE(store.is_sharded());
  for (const auto& name : store.names())
    EXPECT_EQ(store.info(name).dtype, torch::kBFloat16) << name;
  EXPECT_EQ(store.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{8192, 512}));
  EXPECT_EQ(store.info("model.layers.7.mlp.down_proj.weight").shape,
            (std::vector<int64_t>{512, 1408}));
  EXPECT_EQ(store.metadata().at("format"), "pt");
  torch::Tensor embed = store.tensor("model.embed_tokens.weight");
  EXPECT_TRUE(store.files()[0]->mapped_range().contains(embed.data_ptr()));
  EXPECT_TRUE(torch::isfinite(embed.to(torch::kFloat32)).all().item<bool>());
  EXPECT_GT(embed.to(torch::kFloat32).abs().sum().item<float>(), 0.0f);
}

}  // namespace
