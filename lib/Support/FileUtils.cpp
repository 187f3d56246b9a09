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

std::string quench::writeFileAtomically(
    llvm::StringRef path, llvm::function_ref<bool(llvm::raw_ostream &)> write) {
  if (path == "-") {
    bool ok = write(llvm::outs());
    llvm::outs().flush();
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
