// SPDX-License-Identifier: LGPL-2.1-or-later
// The file-system floor of a warm depmod run (see io_floor.hpp).
#include "io_floor.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/file.hpp"
#include "index/parse_cache.hpp"
#include "index/tree_paths.hpp"

namespace kmodd::bench {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point& from)
{
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - from).count();
    from = now;
    return ms;
}

/// Writes all of `bytes` to `fd`; false on a failed write.
bool write_all(int fd, std::string_view bytes)
{
    while (!bytes.empty()) {
        const ssize_t written = ::write(fd, bytes.data(), bytes.size());
        if (written <= 0)
            return false;
        bytes.remove_prefix(static_cast<size_t>(written));
    }
    return true;
}

/// Writes `size` bytes from `chunk` over and over to `fd`; false on a failed write.
bool write_bytes(int fd, const std::array<char, 65536>& chunk, uintmax_t size)
{
    for (; size > 0; size -= std::min<uintmax_t>(size, chunk.size())) {
        const auto n = static_cast<size_t>(std::min<uintmax_t>(size, chunk.size()));
        if (!write_all(fd, std::string_view(chunk.data(), n)))
            return false;
    }
    return true;
}

} // namespace

IoFloor measure_io_floor(const std::string& module_dir,
                         const std::vector<std::string>& module_files,
                         const std::string& cache_file, const std::string& outputs_dir,
                         const std::string& publish_dir)
{
    IoFloor floor;
    fs::create_directories(publish_dir);
    std::vector<std::pair<std::string, uintmax_t>> outputs;
    for (const auto& entry : fs::directory_iterator(outputs_dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() && name.rfind("modules.", 0) == 0)
            outputs.emplace_back(name, entry.file_size());
    }
    std::array<char, 65536> chunk{};
    chunk.fill('x');

    // What the run writes of the cache (read before the clock starts): the delta, when it
    // wrote one (a few modules parsed), else the whole cache again.
    std::string delta;
    bool has_delta = false;
    if (auto read = base::read_file(AT_FDCWD, index::ParseCache::delta_path(cache_file))) {
        delta = std::move(*read);
        has_delta = true;
    }

    auto at = Clock::now();
    {
        // From the module directory, as the run stats them.
        const int dir_fd = ::open(module_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        auto stat_half = [&](size_t first) {
            struct stat st {};
            for (size_t i = first; i < module_files.size(); i += 2) {
                const std::string& file = module_files[i];
                if (dir_fd >= 0 && index::starts_with_dir(file, module_dir))
                    (void)::fstatat(dir_fd, file.c_str() + module_dir.size() + 1, &st, 0);
                else
                    (void)::stat(file.c_str(), &st);
            }
        };
        std::thread other(stat_half, 1);
        stat_half(0);
        other.join();
        if (dir_fd >= 0)
            ::close(dir_fd);
    }
    floor.stat_ms = ms_since(at);

    // Mapped, as the parse cache is read, and every page touched.
    std::string_view cache;
    void* mapped = MAP_FAILED;
    if (const int fd = ::open(cache_file.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
        struct stat st {};
        if (::fstat(fd, &st) == 0 && st.st_size > 0)
            mapped =
                ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
        if (mapped != MAP_FAILED) {
            cache =
                std::string_view(static_cast<const char*>(mapped), static_cast<size_t>(st.st_size));
            unsigned sum = 0;
            for (size_t i = 0; i < cache.size(); i += 4096)
                sum += static_cast<unsigned char>(cache[i]);
            chunk[0] = static_cast<char>(sum);
        }
        ::close(fd);
    }
    floor.cache_read_ms = ms_since(at);

    auto in_dir = [&](const std::string& name, bool is_temp) {
        std::string path = publish_dir;
        path += is_temp ? "/." : "/";
        path += name;
        if (is_temp)
            path += ".tmp";
        return path;
    };
    std::vector<std::pair<int, std::string>> opened; // each temp file and the name it takes
    std::vector<std::thread> syncs;
    for (const auto& [name, size] : outputs) {
        const int fd =
            ::open(in_dir(name, true).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            continue;
        (void)write_bytes(fd, chunk, size);
        opened.emplace_back(fd, name);
        syncs.emplace_back([fd] { (void)::fsync(fd); });
    }
    auto waited_from = Clock::now();
    for (std::thread& sync : syncs)
        sync.join();
    floor.fsync_wait_ms = ms_since(waited_from);
    for (const auto& [fd, name] : opened) {
        ::close(fd);
        (void)::rename(in_dir(name, true).c_str(), in_dir(name, false).c_str());
    }
    if (auto dir = base::open_directory(AT_FDCWD, publish_dir))
        (void)base::sync_directory(dir->get());
    floor.outputs_ms = ms_since(at);

    floor.cache_bytes_written = has_delta ? delta.size() : cache.size();
    floor.wrote_delta = has_delta;
    const std::string cache_name = has_delta ? "modules.cache.delta" : "modules.cache";
    const std::string temp = in_dir(cache_name, true);
    if (const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        fd >= 0) {
        (void)write_all(fd, has_delta ? std::string_view(delta) : cache);
        ::close(fd);
        (void)::rename(temp.c_str(), in_dir(cache_name, false).c_str());
    }
    floor.cache_write_ms = ms_since(at);
    if (mapped != MAP_FAILED)
        ::munmap(mapped, cache.size());
    return floor;
}

FreshMemory measure_fresh_memory(size_t mib)
{
    constexpr size_t kMiB = size_t{1} << 20;
    constexpr size_t kPage = 4096;
    const size_t bytes = mib * kMiB;
    auto touch = [&](bool huge) -> double {
        // 2 MiB more, to start at a 2 MiB boundary.
        void* mapped = ::mmap(nullptr, bytes + 2 * kMiB, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED)
            return 0;
        const auto at = (reinterpret_cast<uintptr_t>(mapped) + 2 * kMiB - 1) & ~(2 * kMiB - 1);
        // NOLINTNEXTLINE(performance-no-int-to-ptr): inside the mapping above
        auto* start = reinterpret_cast<volatile char*>(at);
        const int advice = huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE;
        double ms = 0;
        if (::madvise(const_cast<char*>(start), bytes, advice) == 0) {
            auto from = Clock::now();
            for (size_t offset = 0; offset < bytes; offset += kPage)
                start[offset] = 1;
            ms = ms_since(from);
        }
        ::munmap(mapped, bytes + 2 * kMiB);
        return ms / static_cast<double>(mib);
    };
    // In a child, as a depmod run is: its memory is given back when it exits, as a run's is
    // (the next round's pause then lets the kernel report it free to the host).
    int results[2];
    if (::pipe(results) != 0)
        return {};
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(results[0]);
        FreshMemory fresh;
        fresh.huge_ms_per_mib = touch(true);
        fresh.small_ms_per_mib = touch(false);
        const bool sent = ::write(results[1], &fresh, sizeof fresh) == sizeof fresh;
        ::_exit(sent ? 0 : 1);
    }
    ::close(results[1]);
    FreshMemory fresh;
    if (child < 0 || ::read(results[0], &fresh, sizeof fresh) != sizeof fresh)
        fresh = {};
    ::close(results[0]);
    if (child > 0)
        ::waitpid(child, nullptr, 0);
    return fresh;
}

} // namespace kmodd::bench
