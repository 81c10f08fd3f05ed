// The C interface between ptq and libptq_sentencepiece.so, the one module that links libsentencepiece.
//
// Why a module behind a C interface: Debian's libsentencepiece carries its own copy of protobuf-lite
// 3.14 and exports those symbols. LibTorch loads the system libprotobuf (3.21) into the same process,
// and ELF symbol interposition then mixes the two: sentencepiece's model loading calls
// VerifyVersion(3014000) of the 3.21 library, which aborts the program ("compiled against protobuf
// 3.14.0 ... installed version 3.21.12"). ptq loads the module with dlopen(RTLD_LOCAL | RTLD_DEEPBIND):
// its symbols stay out of the global scope (LibTorch's protobuf is untouched) and its own references
// bind to its own copies first (sentencepiece gets its own protobuf). Only plain C types cross the
// boundary, so neither side depends on the other's C++ symbols or allocator; memory the module returns
// is given back through `release`.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Raised whenever a function below changes; the loader refuses a module with another version.
#define PTQ_SENTENCEPIECE_BRIDGE_VERSION 1

// Every function returning int returns 0 on success; on failure it returns non-zero and, when `error`
// is not null, sets *error to a message the caller gives back with `release`. No C++ exception leaves the
// module.
typedef struct PtqSentencePieceBridge {
  int version;
  // Loads a serialized ModelProto file; *model receives the handle.
  int (*load)(const char* path, void** model, char** error);
  void (*destroy)(void* model);
  // Text (UTF-8, `size` bytes) -> piece ids in a new array of *count ints.
  int (*encode)(void* model, const char* text, size_t size, int** ids, size_t* count, char** error);
  // Piece ids -> text in a new buffer of *size bytes (not NUL-terminated).
  int (*decode)(void* model, const int* ids, size_t count, char** text, size_t* size, char** error);
  // The piece of `id` (0 <= id < piece_size) in a new buffer of *size bytes.
  int (*id_to_piece)(void* model, int id, char** piece, size_t* size, char** error);
  // The id of a piece, or the unknown piece's id when it is not in the vocabulary (sentencepiece's rule).
  int (*piece_to_id)(void* model, const char* piece, size_t size);
  int (*piece_size)(void* model);
  int (*bos_id)(void* model);  // -1 when the model has none
  int (*eos_id)(void* model);  // -1 when the model has none
  int (*is_control)(void* model, int id);
  void (*release)(void* memory);
} PtqSentencePieceBridge;

// The one exported symbol of the module.
const PtqSentencePieceBridge* ptq_sentencepiece_bridge(void);

#ifdef __cplusplus
}
#endif
