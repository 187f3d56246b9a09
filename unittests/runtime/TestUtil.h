// Helpers shared by the runtime unit tests.
#ifndef QUENCH_UNITTESTS_RUNTIME_TESTUTIL_H
#define QUENCH_UNITTESTS_RUNTIME_TESTUTIL_H

#include "quench/runtime.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace quench_test {

/// A fresh directory under the test temp dir, removed (recursively, one
/// level of subdirectories) when the object goes away.
class ScratchDir {
public:
  ScratchDir() {
    std::string tmpl = ::testing::TempDir() + "quench-rt-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    const char *p = mkdtemp(buf.data());
    if (p)
      path_ = p;
  }
  ~ScratchDir() { removeTree(path_); }
  ScratchDir(const ScratchDir &) = delete;
  ScratchDir &operator=(const ScratchDir &) = delete;

  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

  /// Names of the entries in the directory (without . and ..), sorted.
  std::vector<std::string> entries() const { return listDir(path_); }

  static std::vector<std::string> listDir(const std::string &dir) {
    std::vector<std::string> names;
    if (DIR *d = opendir(dir.c_str())) {
      while (dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..")
          names.push_back(n);
      }
      closedir(d);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

private:
  static void removeTree(const std::string &p) {
    if (p.empty())
      return;
    struct stat st;
    if (lstat(p.c_str(), &st) != 0)
      return;
    if (S_ISDIR(st.st_mode)) {
      for (const std::string &n : listDir(p))
        removeTree(p + "/" + n);
      rmdir(p.c_str());
    } else {
      unlink(p.c_str());
    }
  }
  std::string path_;
};

inline std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A .npy version-1.0 preamble for the given header text (no padding).
inline std::string npyFile(const std::string &header, const std::string &data,
                           int major = 1) {
  std::string s("\x93NUMPY", 6);
  s.push_back(static_cast<char>(major));
  s.push_back('\0');
  size_t n = header.size();
  s.push_back(static_cast<char>(n & 0xff));
  s.push_back(static_cast<char>((n >> 8) & 0xff));
  if (major >= 2) {
    s.push_back(static_cast<char>((n >> 16) & 0xff));
    s.push_back(static_cast<char>((n >> 24) & 0xff));
  }
  return s + header + data;
}

} // namespace quench_test

#endif
