// What a command may replace when it writes a folder (ptq quantize --out, compare --save-dir,
// make-random-model, convert-llama2c): ptq never deletes what it did not write.
//
// write_folder_atomically replaces a whole folder, so `--out .` in a folder of unrelated files, or
// `--out` naming the model folder itself, used to delete them. The rules, checked before any work:
//   - the output is not one of the command's inputs, not inside one, and contains none (replacing it
//     would delete the input);
//   - an existing output is replaced only when it is empty or a checkpoint ptq wrote (config.json with
//     quantization_config.ptq); a float model folder (config.json, *.safetensors and the usual
//     companions, nothing else: another tool's, or one of ptq's float folders, which carry no mark)
//     needs `force`; anything else is refused, force or not.
// Refusals are ptq::Error messages naming the folder, the rule and what to do.
#pragma once

#include <filesystem>
#include <vector>

namespace ptq {

struct OutputFolderRules {
  std::vector<std::filesystem::path> inputs;  // folders or files the command reads
  bool force = false;                         // also replace a model folder another tool wrote
};

void check_output_folder(const std::filesystem::path& out, const OutputFolderRules& rules);

}  // namespace ptq
