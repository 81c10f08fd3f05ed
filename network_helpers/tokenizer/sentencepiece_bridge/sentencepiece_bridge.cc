// libptq_sentencepiece.so: sentencepiece behind the C interface of sentencepiece_bridge.h. The only
// code of the project that includes or links sentencepiece; the header says why.
#include "network_helpers/tokenizer/sentencepiece_bridge.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

using Processor = sentencepiece::SentencePieceProcessor;

Processor& processor(void* model) { return *static_cast<Processor*>(model); }

// A malloc'ed copy the caller gives back through release(); null when out of memory.
char* copy_out(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out == nullptr) return nullptr;
  std::memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  return out;
}

int fail(char** error, const std::string& message) {
  if (error != nullptr) *error = copy_out(message);
  return 1;
}

// Runs `body` (returning a sentencepiece status) with no exception escaping the C interface.
template <typename Body>
int guarded(char** error, Body body) {
  try {
    const sentencepiece::util::Status status = body();
    return status.ok() ? 0 : fail(error, status.ToString());
  } catch (const std::exception& e) {
    return fail(error, e.what());
  } catch (...) {
    return fail(error, "unknown exception inside sentencepiece");
  }
}

int load(const char* path, void** model, char** error) {
  *model = nullptr;
  auto* loaded = new (std::nothrow) Processor();
  if (loaded == nullptr) return fail(error, "out of memory");
  const int rc = guarded(error, [&] { return loaded->Load(std::string(path)); });
  if (rc != 0) {
    delete loaded;
    return rc;
  }
  *model = loaded;
  return 0;
}

void destroy(void* model) { delete static_cast<Processor*>(model); }

int encode(void* model, const char* text, size_t size, int** ids, size_t* count, char** error) {
  std::vector<int> pieces;
  const int rc = guarded(error, [&] { return processor(model).Encode(std::string(text, size), &pieces); });
  if (rc != 0) return rc;
  *count = pieces.size();
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(pieces.size(), 1) * sizeof(int)));
  if (*ids == nullptr) return fail(error, "out of memory");
  if (!pieces.empty()) std::memcpy(*ids, pieces.data(), pieces.size() * sizeof(int));
  return 0;
}

int decode(void* model, const int* ids, size_t count, char** text, size_t* size, char** error) {
  std::string out;
  const int rc = guarded(error, [&] { return processor(model).Decode(std::vector<int>(ids, ids + count), &out); });
  if (rc != 0) return rc;
  *text = copy_out(out);
  *size = out.size();
  return *text == nullptr ? fail(error, "out of memory") : 0;
}

int id_to_piece(void* model, int id, char** piece, size_t* size, char** error) {
  if (id < 0 || id >= processor(model).GetPieceSize())
    return fail(error, "piece id " + std::to_string(id) + " is outside the vocabulary");
  const std::string out = processor(model).IdToPiece(id);
  *piece = copy_out(out);
  *size = out.size();
  return *piece == nullptr ? fail(error, "out of memory") : 0;
}

int piece_to_id(void* model, const char* piece, size_t size) {
  return processor(model).PieceToId(std::string(piece, size));
}

int piece_size(void* model) { return processor(model).GetPieceSize(); }
int bos_id(void* model) { return processor(model).bos_id(); }
int eos_id(void* model) { return processor(model).eos_id(); }
int is_control(void* model, int id) { return processor(model).IsControl(id) ? 1 : 0; }
void release(void* memory) { std::free(memory); }

const PtqSentencePieceBridge kBridge = {
    PTQ_SENTENCEPIECE_BRIDGE_VERSION, load, destroy, encode, decode, id_to_piece, piece_to_id, piece_size,
    bos_id, eos_id, is_control, release};

}  // namespace

extern "C" __attribute__((visibility("default"))) const PtqSentencePieceBridge* ptq_sentencepiece_bridge(void) {
  return &kBridge;
}
