// SPDX-License-Identifier: LGPL-2.1-or-later
// join_parameters: kmod's joining of command-line parameters, with every blank the kernel
// splits on quoted.
#include "loader/parameters.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace kmodd::loader {
namespace {

std::string joined(const std::vector<std::string>& parameters)
{
    return join_parameters(parameters);
}

TEST(JoinParameters, SeparatesParametersBySpacesAsKmodDoes)
{
    EXPECT_EQ(joined({}), "");
    EXPECT_EQ(joined({"debug=1"}), "debug=1");
    EXPECT_EQ(joined({"debug=1", "verbose", "name=x"}), "debug=1 verbose name=x");
}

TEST(JoinParameters, QuotesAValueHoldingASpaceAsKmodDoes)
{
    EXPECT_EQ(joined({"label=two words", "n=1"}), "label=\"two words\" n=1");
}

TEST(JoinParameters, LeavesValuesThatAreQuotedAlreadyOrEmptyAsTheyAre)
{
    EXPECT_EQ(joined({"label=\"two words\""}), "label=\"two words\"");
    EXPECT_EQ(joined({"label='two words'"}), "label='two words'");
    EXPECT_EQ(joined({"label="}), "label=");
    EXPECT_EQ(joined({"flag with space"}), "flag with space") << "no '=': nothing to quote";
}

TEST(JoinParameters, QuotesEveryBlankTheKernelSplitsOn)
{
    // The kernel's next_arg() ends an unquoted value at any isspace() character; kmod quotes
    // only spaces, so a tab would cut the value in two there.
    for (char blank : std::string(" \t\n\v\f\r")) {
        std::string value = std::string("a") + blank + "b";
        EXPECT_EQ(joined({"p=" + value}), "p=\"" + value + "\"") << int(blank);
    }
}

} // namespace
} // namespace kmodd::loader
