//===- FileUtils.cpp - atomic output files --------------------------------===//

#include "quench/Support/FileUtils.h"

#include "quench/Support/OutOfMemory.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

quench::TemporaryFileCleanup::TemporaryFileCleanup(llvm::StringRef path)
    : path(path.str()) {
  llvm::sys::RemoveFileOnSignal(this->path);
  checkTestAllocationFailure("temporary");
}

quench::TemporaryFileCleanup::~TemporaryFileCleanup() {
  llvm::sys::DontRemoveFileOnSignal(path);
}

/// Whether `path` is an existing character device or FIFO.
static bool isStream(llvm::StringRef path) {
  llvm::sys::fs::file_status status;
  if (llvm::sys::fs::status(path, status))
    return false;
  return status.type() == llvm::sys::fs::file_type::character_file ||
         status.type() == llvm::sys::fs::file_type::fifo_file;
}

std::string quench::writeFileAtomically(
    llvm::StringRef path, llvm::function_ref<bool(llvm::raw_ostream &)> write) {
  if (path == "-") {
    bool ok = write(llvm::outs());
    llvm::outs().flush();
    return ok ? "" : "output abandoned";
  }
  if (std::string err = checkOutputPath(path, {}, /*streamable=*/true);
      !err.empty())
    return err;
  if (isStream(path)) {
    // A character device or FIFO (/dev/null, a pipe) is written into, as
    // by `cc -o /dev/null`, never replaced by a rename.
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
    if (ec)
      return "cannot write '" + path.str() + "': " + ec.message();
    bool ok = write(os);
    os.flush();
    if (os.has_error()) {
      std::string msg = os.error().message();
      os.clear_error();
      return "cannot write '" + path.str() + "': " + msg;
    }
    return ok ? "" : "output abandoned";
  }
  llvm::SmallString<256> model(path);
  model += ".tmp-%%%%%%%%";
  int fd;
  llvm::SmallString<256> tmp;
  if (std::error_code ec = llvm::sys::fs::createUniqueFile(model, fd, tmp))
    return "cannot create a file next to '" + path.str() + "': " + ec.message();
  TemporaryFileCleanup cleanup(tmp);
  bool ok;
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    ok = write(os);
    os.flush();
    if (os.has_error()) {
      std::string msg = os.error().message();
      os.clear_error();
      llvm::sys::fs::remove(tmp);
      return "cannot write '" + path.str() + "': " + msg;
    }
  }
  if (!ok) {
    llvm::sys::fs::remove(tmp);
    return "output abandoned";
  }
  if (std::error_code ec = llvm::sys::fs::rename(tmp, path)) {
    llvm::sys::fs::remove(tmp);
    return "cannot create '" + path.str() + "': " + ec.message();
  }
  return "";
}

std::string quench::checkOutputPath(llvm::StringRef path,
                                    llvm::ArrayRef<std::string> inputs,
                                    bool streamable) {
  if (path == "-")
    return "";
  llvm::sys::fs::file_status status;
  if (llvm::sys::fs::status(path, status))
    return ""; // does not exist (yet)
  if (streamable && isStream(path))
    return "";
  if (status.type() != llvm::sys::fs::file_type::regular_file)
    return "cannot write '" + path.str() +
           "': it exists and is not a regular file (a directory, device or "
           "FIFO is never replaced" +
           (streamable ? ")" : "; binary outputs are written to a file)");
  for (const std::string &in : inputs) {
    bool same = false;
    if (!llvm::sys::fs::equivalent(in, path, same) && same)
      return "cannot write '" + path.str() + "': the output " +
             (in == path ? std::string("is the input")
                         : "is the input '" + in + "' (the same file)") +
             "; choose another -o";
  }
  return "";
}

std::string quench::withExtension(llvm::StringRef path, llvm::StringRef ext) {
  if (path == "-" || path.ends_with(ext))
    return path.str();
  return (path + ext).str();
}

std::string quench::withoutExtension(llvm::StringRef path,
                                     llvm::StringRef ext) {
  return path.ends_with(ext) ? path.drop_back(ext.size()).str() : path.str();
}

std::string
quench::writeTextOutput(llvm::StringRef out, llvm::StringRef ext,
                        llvm::function_ref<void(llvm::raw_ostream &)> print,
                        std::string &error) {
  std::string path = withExtension(out, ext);
  error = writeFileAtomically(path, [&](llvm::raw_ostream &os) {
    print(os);
    return true;
  });
  return error.empty() && out != "-" ? path : "";
}

std::error_code quench::writeAllAt(int fd, llvm::ArrayRef<char> data,
                                   uint64_t offset) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(),
                         std::min<size_t>(data.size(), size_t(1) << 30),
                         (off_t)offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return std::error_code(errno, std::generic_category());
    if (n == 0)
      return std::make_error_code(std::errc::no_space_on_device);
    data = data.drop_front((size_t)n);
    offset += (uint64_t)n;
  }
  return {};
}
