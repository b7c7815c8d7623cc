// SPDX-License-Identifier: LGPL-2.1-or-later
// The main of a fuzz target built without libFuzzer: runs the target once on every file
// named, or on every file in a directory named (its corpus and the crash inputs kept as
// regressions), so a build without clang still checks them.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_check.hpp"

namespace {

int replay(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        return 1;
    }
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    // A copy of exactly the input's size, so that ASan sees a read past its end.
    const std::vector<uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.data(), data.size());
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    int failed = 0;
    size_t count = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg(argv[i]);
        if (std::filesystem::is_directory(arg)) {
            for (const auto& entry : std::filesystem::directory_iterator(arg)) {
                if (entry.is_regular_file()) {
                    failed |= replay(entry.path());
                    ++count;
                }
            }
        } else {
            failed |= replay(arg);
            ++count;
        }
    }
    std::printf("%zu inputs replayed\n", count);
    // A corpus that is gone or empty would make this test pass without checking anything.
    return failed != 0 || count == 0 ? 1 : 0;
}
