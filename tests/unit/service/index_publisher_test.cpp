// SPDX-License-Identifier: LGPL-2.1-or-later
// IndexPublisher: which batches give the served release a new snapshot, and what it shows.
#include "service/index_publisher.hpp"

#include <gtest/gtest.h>

#include "service_support.hpp"

namespace kmodd::service {
namespace {

using test::TempTree;
using test_support::fixture;
using test_support::options_for;
using Action = VersionReport::Action;

IndexPublisher::Settings settings_for(const TempTree& tree, const std::string& release)
{
    IndexPublisher::Settings settings;
    settings.index = options_for(tree.root());
    settings.release = release;
    settings.modprobe_config = {"/dev/null"};
    settings.cmdline_path = "";
    return settings;
}

TEST(IndexPublisher, StartOpensTheServedReleasesSnapshotAsPublicationOne)
{
    TempTree tree;
    tree.add("kernel/mod1.ko", fixture("mod1"));
    tree.add("kernel/mod2.ko", fixture("mod2"));
    IndexPublisher publisher(settings_for(tree, tree.version()));
    Publication start = publisher.start();
    ASSERT_EQ(start.reports.size(), 1U);
    EXPECT_EQ(start.reports[0].action, Action::Written);
    ASSERT_TRUE(start.snapshot) << (start.snapshot_error ? start.snapshot_error->message : "");
    EXPECT_EQ(start.snapshot->generation(), 1U);
    EXPECT_TRUE(start.snapshot->database().dependency_line("mod2").has_value());
    EXPECT_FALSE(publisher.current()) << "publishing is the caller's step";
    publisher.publish(start.snapshot);
    EXPECT_EQ(publisher.current(), start.snapshot);
    EXPECT_EQ(IndexPublisher::usable_count(start.reports[0], start.snapshot), 2U);
}

TEST(IndexPublisher, OnlyARewriteOfTheServedReleaseGivesANewSnapshot)
{
    TempTree tree;
    tree.add("kernel/mod1.ko", fixture("mod1"));
    test::fs::create_directories(tree.root() / "lib/modules/9.9.9-other/kernel");
    IndexPublisher publisher(settings_for(tree, tree.version()));
    publisher.publish(publisher.start().snapshot);

    tree.add("kernel/mod2.ko", fixture("mod2"));
    ChangeSet changes;
    changes.versions[tree.version()].paths = {(tree.module_dir() / "kernel/mod2.ko").string()};
    Publication added = publisher.apply(changes, {});
    ASSERT_TRUE(added.snapshot);
    EXPECT_EQ(added.snapshot->generation(), 2U);
    EXPECT_TRUE(added.snapshot->database().dependency_line("mod2").has_value());

    Publication other = publisher.apply({}, {"9.9.9-other"});
    ASSERT_EQ(other.reports.size(), 1U);
    EXPECT_EQ(other.reports[0].version, "9.9.9-other");
    EXPECT_FALSE(other.snapshot) << "another release's rebuild leaves the served one as it is";
    EXPECT_FALSE(other.is_release_gone);
}

TEST(IndexPublisher, AServedReleaseWithoutAnIndexHasNoSnapshotAndNoError)
{
    TempTree tree;
    IndexPublisher publisher(settings_for(tree, "0.0.0-missing"));
    Publication start = publisher.start();
    EXPECT_FALSE(start.snapshot);
    EXPECT_FALSE(start.snapshot_error);
    auto again = publisher.reread_config();
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_FALSE(*again);
}

} // namespace
} // namespace kmodd::service
