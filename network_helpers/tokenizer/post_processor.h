// Post-processors of tokenizer.json ("post_processor" key), for a single sequence: the
// special-token ids that encode(add_special_tokens=true) puts before and after the text's ids.
// Supported: TemplateProcessing (e.g. "<s> $A"), ByteLevel (adds nothing), RobertaProcessing,
// BertProcessing, and Sequence of those.
#pragma once

#include <cstdint>
#include <vector>

#include "network_helpers/tokenizer/json_util.h"

namespace ptq::tok {

struct SpecialTokenFrame {
  std::vector<int64_t> prefix;  // e.g. [BOS]
  std::vector<int64_t> suffix;  // e.g. [EOS]
};

// Null JSON gives an empty frame.
SpecialTokenFrame make_post_processor(const Json& config, const JsonPath& where);

}  // namespace ptq::tok
