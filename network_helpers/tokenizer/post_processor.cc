#include "network_helpers/tokenizer/post_processor.h"

#include "framework/error.h"

namespace ptq::tok {

namespace {

// TemplateProcessing: the "single" template is a list of {"SpecialToken": {"id": "<s>"}} and
// {"Sequence": {"id": "A"}} items; "special_tokens" maps each special token name to its ids.
SpecialTokenFrame template_frame(const Json& config, const JsonPath& where) {
  const Json& single = require_key(config, "single", where, "a template list");
  if (!single.is_array()) (where / "single").fail_expected("a template list", single);
  const Json& specials = require_key(config, "special_tokens", where, "an object");
  SpecialTokenFrame frame;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonPath item_where = (where / "single")[i];
    const Json& item = single[i];
    if (const Json* sequence = find_key(item, "Sequence")) {
      const std::string id = require_string(*sequence, "id", item_where / "Sequence");
      if (id != "A") (item_where / "Sequence" / "id").fail_expected("\"A\"", (*sequence)["id"]);
      seen_sequence = true;
    } else if (const Json* special = find_key(item, "SpecialToken")) {
      const std::string name = require_string(*special, "id", item_where / "SpecialToken");
      const Json& entry = require_key(specials, name, where / "special_tokens", "its ids");
      const Json& ids = require_key(entry, "ids", where / "special_tokens" / name, "a list of ids");
      if (!ids.is_array())
        (where / "special_tokens" / name / "ids").fail_expected("a list of ids", ids);
      for (const Json& id : ids) {
        if (!id.is_number_integer()) {
          (where / "special_tokens" / name / "ids").fail_expected("integer ids", ids);
        }
        (seen_sequence ? frame.suffix : frame.prefix).push_back(id.get<int64_t>());
      }
    } else {
      item_where.fail_expected(R"({"SpecialToken": ..} or {"Sequence": ..})", item);
    }
  }
  return frame;
}

// BertProcessing / RobertaProcessing: {"cls": ["<s>", 0], "sep": ["</s>", 2]} -> cls $A sep.
SpecialTokenFrame cls_sep_frame(const Json& config, const JsonPath& where) {
  const auto read = [&](const char* key) {
    const Json& pair = require_key(config, key, where, "[token, id]");
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer()) {
      (where / key).fail_expected("[token, id]", pair);
    }
    return pair[1].get<int64_t>();
  };
  return SpecialTokenFrame{{read("cls")}, {read("sep")}};
}

}  // namespace

SpecialTokenFrame make_post_processor(const Json& config, const JsonPath& where) {
  if (config.is_null()) return {};
  const std::string type = require_string(config, "type", where);
  if (type == "TemplateProcessing") return template_frame(config, where);
  if (type == "ByteLevel") return {};  // only trims offsets, which ptq does not track
  if (type == "BertProcessing" || type == "RobertaProcessing") return cls_sep_frame(config, where);
  if (type == "Sequence") {
    const Json& list = require_key(config, "processors", where, "a list of post-processors");
    if (!list.is_array()) (where / "processors").fail_expected("a list of post-processors", list);
    SpecialTokenFrame frame;
    for (size_t i = 0; i < list.size(); ++i) {
      // Each processor wraps what the ones before it produced.
      SpecialTokenFrame outer = make_post_processor(list[i], (where / "processors")[i]);
      outer.prefix.insert(outer.prefix.end(), frame.prefix.begin(), frame.prefix.end());
      frame.suffix.insert(frame.suffix.end(), outer.suffix.begin(), outer.suffix.end());
      frame.prefix = std::move(outer.prefix);
    }
    return frame;
  }
  (where / "type")
      .fail(fmt::format("unsupported post_processor type '{}' (ptq supports TemplateProcessing, "
                        "ByteLevel, BertProcessing, RobertaProcessing, Sequence)",
                        type));
}

}  // namespace ptq::tok
