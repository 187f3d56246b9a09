//===- ReplayMain.cpp - Run a fuzz target on files, without libFuzzer -----===//
//
// Builds without QUENCH_BUILD_FUZZERS link the fuzz targets with this main:
// `TARGET FILE|DIR...` calls LLVMFuzzerTestOneInput once per file (a
// directory: every regular file in it, sorted), so the seed corpora and the
// regression inputs of fuzz/corpus run as CTest tests in every build,
// sanitized ones included (docs/testing.md). A finding aborts, as it does
// under libFuzzer.
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <dirent.h>
#include <string>
#include <sys/stat.h>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv)
    __attribute__((weak));

static bool readFile(const std::string &path, std::vector<uint8_t> &out) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return false;
  out.clear();
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.insert(out.end(), buf, buf + n);
  bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      std::fprintf(stderr, "%s: cannot read '%s'\n", argv[0], argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      files.push_back(argv[i]);
      continue;
    }
    std::vector<std::string> entries;
    if (DIR *d = opendir(argv[i])) {
      while (struct dirent *e = readdir(d)) {
        std::string p = std::string(argv[i]) + "/" + e->d_name;
        if (e->d_name[0] != '.' && stat(p.c_str(), &st) == 0 &&
            S_ISREG(st.st_mode))
          entries.push_back(p);
      }
      closedir(d);
    }
    std::sort(entries.begin(), entries.end());
    files.insert(files.end(), entries.begin(), entries.end());
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 1;
  }
  std::vector<uint8_t> data;
  for (const std::string &f : files) {
    if (!readFile(f, data)) {
      std::fprintf(stderr, "%s: cannot read '%s'\n", argv[0], f.c_str());
      return 1;
    }
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::printf("%s: %zu inputs, no finding\n", argv[0], files.size());
  return 0;
}
