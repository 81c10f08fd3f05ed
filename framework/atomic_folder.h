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
// An empty path is the current folder (the parent of a bare file name).
void sync_path(const std::filesystem::path& path);

// ---- one file all-or-nothing: temporary next to it, fsync, rename, fsync of the folder ----------------

// "<name>.tmp.<pid>" next to `final_path`: same folder, so the rename never crosses a file system
// (rename is atomic only within one).
std::filesystem::path temporary_file_path(const std::filesystem::path& final_path);

// Renames a fully written temporary onto `final_path`; on failure removes the temporary and throws
// ptq::Error naming both. (The folder's fsync is the caller's: a writer committing several files
// syncs once.)
void commit_file(const std::filesystem::path& temporary, const std::filesystem::path& final_path);

// Writes `path` all-or-nothing: write(temporary) fills temporary_file_path(path), which is then
// fsynced, renamed onto `path` (commit_file) and made durable by an fsync of the folder. If `write`
// throws, the temporary is removed and `path` is left as it was.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& temporary)>& write);

}  // namespace ptq
