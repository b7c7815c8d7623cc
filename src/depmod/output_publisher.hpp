// SPDX-License-Identifier: LGPL-2.1-or-later
// The files of one build as they reach the output directory, written only where they differ.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/file.hpp"
#include "base/result.hpp"
#include "depmod/output_sink.hpp"
#include "depmod/output_state.hpp"

namespace kmodd::depmod {

/// Gives each file a build makes a sink that compares it, chunk by chunk as it is made, with
/// the file of the same name in the output directory, and writes it to a temp file of `batch`
/// only from the first chunk that differs on (the bytes before that copied from the old file):
/// a file that comes out the same is never written, and none is held whole. Without an output
/// directory (`dir_fd` < 0) the files are only described. Sinks may be opened and finished
/// from two threads.
class OutputPublisher {
public:
    OutputPublisher(int dir_fd, base::PublishBatch& batch) : dir_fd_(dir_fd), batch_(batch) {}

    /// The sink for the file `name`.
    [[nodiscard]] std::unique_ptr<OutputSink> open(const char* name);

    /// Takes the file `recorded.name` on disk as made when it holds the bytes `recorded`
    /// describes (size and content digest, read to check); false otherwise, or without an
    /// output directory. May be called from two threads, as open().
    [[nodiscard]] bool keep(const OutputState::File& recorded);

    /// What the output state keeps of each file, in the order finished or kept.
    [[nodiscard]] std::vector<OutputState::File> take_files() { return std::move(files_); }
    /// How many files keep() took.
    [[nodiscard]] size_t kept_count() const { return kept_; }
    /// The files that differed from those on disk (written to temp files), in that order.
    [[nodiscard]] const std::vector<std::string>& changed() const { return changed_; }
    /// The first write that failed (the batch is then abandoned).
    [[nodiscard]] const std::optional<base::Error>& failure() const { return failure_; }

private:
    class Sink;
    /// A temp file for `name` from the batch; nullopt after a failure.
    std::optional<base::PublishBatch::Opened> start(const std::string& name);
    void fail(base::Unexpected error);
    void finished(Sink& sink, const std::optional<base::PublishBatch::Opened>& temp);

    int dir_fd_;
    base::PublishBatch& batch_;
    std::mutex mutex_; ///< guards the batch and what follows
    std::vector<OutputState::File> files_;
    std::vector<std::string> changed_;
    size_t kept_ = 0;
    std::optional<base::Error> failure_;
    std::atomic<bool> failed_{false};
};

} // namespace kmodd::depmod
