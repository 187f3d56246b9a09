//===- FuzzInput.cpp - Fuzz inputs as files -------------------------------===//

#include "FuzzInput.h"

#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace quench::fuzz;

namespace {
/// The process's private directory, removed (with its files) at exit.
struct TempDir {
  std::string path;
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    struct stat st;
    if (!base || !*base)
      base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
                                                                : "/tmp";
    std::string tmpl = std::string(base) + "/quench-fuzz-XXXXXX";
    if (!mkdtemp(tmpl.data())) {
      std::perror("quench fuzz: mkdtemp");
      std::abort();
    }
    path = tmpl;
  }
  ~TempDir() {
    if (DIR *d = opendir(path.c_str())) {
      while (struct dirent *e = readdir(d))
        if (e->d_name[0] != '.')
          unlink((path + "/" + e->d_name).c_str());
      closedir(d);
    }
    rmdir(path.c_str());
  }
};

const TempDir &tempDir() {
  static TempDir dir;
  return dir;
}
} // namespace

InputFile::InputFile(const char *name) : path_(tempDir().path + "/" + name) {}

std::string InputFile::sibling(const char *name) const {
  return tempDir().path + "/" + name;
}

void InputFile::write(const uint8_t *data, size_t size) const {
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror("quench fuzz: open");
    std::abort();
  }
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) {
      std::perror("quench fuzz: write");
      std::abort();
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  close(fd);
}
