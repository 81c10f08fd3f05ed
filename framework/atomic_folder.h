// Writing a whole folder all-or-nothing: the content goes into a temporary sibling folder that is
// renamed into place at the end, so a reader (or a crash) sees the old folder or the new one, never
// a mix.
#pragma once

#include <filesystem>
#include <functional>

namespace ptq {

// Calls fill(staging) with an empty folder "<dir>.tmp-<pid>" next to `dir` (parents are created),
// makes its files durable (fsync), then replaces `dir` with it: an existing `dir` is first renamed
// to "<dir>.old-<pid>" and removed only after the new folder is in place (and restored if that
// rename fails). If fill or anything else throws, the staging folder is removed and `dir` is left
// as it was. Filesystem failures are thrown as ptq::Error naming the path. `dir` must not be an
// existing file.
void write_folder_atomically(const std::filesystem::path& dir,
                             const std::function<void(const std::filesystem::path& staging)>& fill);

// fsync of a folder (its entries: renames, new files) or a file; best effort, errors are ignored.
void sync_path(const std::filesystem::path& path);

}  // namespace ptq
