#include "framework/atomic_folder.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "framework/error.h"
#include "framework/log.h"

namespace ptq {
namespace fs = std::filesystem;

namespace {

// Puts the finished staging folder at `target`. POSIX cannot rename a folder onto a non-empty one,
// so an old folder is moved aside first, as late as possible, and moved back if the second rename
// fails.
void replace_folder(const fs::path& staging, const fs::path& target, const fs::path& backup) {
  std::error_code ec;
  fs::remove_all(backup, ec);  // left over by a crashed process that had our pid
  const bool had_old = fs::exists(target);
  if (had_old) fs::rename(target, backup);
  if (::rename(staging.c_str(), target.c_str()) != 0) {
    const int rename_errno = errno;
    if (had_old) ::rename(backup.c_str(), target.c_str());
    fail("{}: cannot rename {} onto it: {}", target.string(), staging.string(),
         std::strerror(rename_errno));
  }
  if (!had_old) return;
  fs::remove_all(backup, ec);
  if (ec)
    log_warning("{}: the previous folder, moved to {}, could not be removed: {}", target.string(),
                backup.string(), ec.message());
}

}  // namespace

void sync_path(const fs::path& path) {
  const fs::path target = path.empty() ? fs::path(".") : path;
  const int flags =
      fs::is_directory(target) ? O_RDONLY | O_DIRECTORY | O_CLOEXEC : O_RDONLY | O_CLOEXEC;
  const int fd = ::open(target.c_str(), flags);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

fs::path temporary_file_path(const fs::path& final_path) {
  return final_path.parent_path() / fmt::format("{}.tmp.{}", final_path.filename().string(), ::getpid());
}

void commit_file(const fs::path& temporary, const fs::path& final_path) {
  if (::rename(temporary.c_str(), final_path.c_str()) != 0) {
    const int rename_errno = errno;
    ::unlink(temporary.c_str());
    fail("{}: cannot rename {} onto it: {}", final_path.string(), temporary.string(), std::strerror(rename_errno));
  }
}

void write_file_atomically(const fs::path& path, const std::function<void(const fs::path& temporary)>& write) {
  const fs::path temporary = temporary_file_path(path);
  try {
    write(temporary);
  } catch (...) {
    ::unlink(temporary.c_str());
    throw;
  }
  sync_path(temporary);
  commit_file(temporary, path);
  sync_path(path.parent_path());
}

void write_folder_atomically(const fs::path& dir,
                             const std::function<void(const fs::path& staging)>& fill) {
  PTQ_CHECK(!dir.empty(), "write_folder_atomically: the folder path is empty");
  fs::path target = fs::absolute(dir).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();  // "out/" names the folder "out"
  const fs::path parent = target.parent_path();
  const std::string name = target.filename().string();
  const std::string pid = std::to_string(::getpid());
  const fs::path staging = parent / (name + ".tmp-" + pid);
  const fs::path backup = parent / (name + ".old-" + pid);

  std::error_code ec;
  PTQ_CHECK(!fs::exists(target, ec) || fs::is_directory(target, ec),
            "{}: exists and is not a folder; refusing to replace a file with a folder",
            target.string());
  fs::create_directories(parent, ec);
  PTQ_CHECK(!ec, "{}: cannot create the parent folder {}: {}", target.string(), parent.string(),
            ec.message());
  fs::remove_all(staging, ec);  // left over by a crashed process that had our pid
  fs::create_directory(staging, ec);
  PTQ_CHECK(!ec, "{}: cannot create the temporary folder {}: {}", target.string(), staging.string(),
            ec.message());
  try {
    fill(staging);
    for (const auto& entry : fs::recursive_directory_iterator(staging))
      if (entry.is_regular_file()) sync_path(entry.path());
    sync_path(staging);
    replace_folder(staging, target, backup);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(staging, ec);
    fail("{}: {}", target.string(), e.what());
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  sync_path(parent);
}

}  // namespace ptq
