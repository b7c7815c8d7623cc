// SPDX-License-Identifier: LGPL-2.1-or-later
// The kernel command line part of the modprobe configuration (kmod's
// kmod_config_parse_kcmdline): a character-driven state machine, so that odd words are
// ignored exactly where kmod ignores them.
#include <algorithm>

#include "index/names.hpp"
#include "loader/modprobe_config.hpp"

namespace kmodd::loader {

namespace {

// kmod reads /proc/cmdline into a 4096-byte buffer, NUL included.
constexpr size_t kCmdlineMax = 4095;

enum class State { Ignore, Modname, Param, Value };

bool ends_word(char c)
{
    return c == '\0' || c == ' ' || c == '\n' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

} // namespace

void ModprobeConfig::parse_kernel_cmdline(std::string_view cmdline)
{
    index::Diagnostics ignored;
    parse_kernel_cmdline(cmdline, ignored);
}

void ModprobeConfig::parse_kernel_cmdline(std::string_view cmdline, index::Diagnostics& diagnostics)
{
    std::string_view text = cmdline.substr(0, std::min(cmdline.size(), kCmdlineMax));
    if (size_t nul = text.find('\0'); nul != std::string_view::npos)
        text = text.substr(0, nul);

    // One word: [quote] modname '.' param ['=' value]. Offsets into `text`.
    State state = State::Modname;
    bool quoted = false;
    bool opened_by_quote = false; // a bootloader-quoted "mod.param=value" word
    size_t modname = 0;
    size_t dot = 0;
    size_t value = std::string_view::npos;

    auto complete = [&](size_t end) {
        std::string_view name = text.substr(modname, dot - modname);
        std::string_view param_name = text.substr(dot + 1, end - dot - 1);
        std::string param(param_name);
        std::string value_text;
        if (value != std::string_view::npos) {
            param = std::string(text.substr(dot + 1, value - dot - 1));
            // kmod moves the opening quote behind the '=': "m.p=a b" reads as m.p="a b".
            if (opened_by_quote)
                value_text = "\"";
            value_text += text.substr(value, end - value);
            param += value_text;
        }
        if (name == "modprobe" && param.starts_with("blacklist=")) {
            // Split on ',' keeping empty pieces, and not normalised: kmod 30 does the same.
            size_t start = 0;
            for (;;) {
                size_t comma = value_text.find(',', start);
                blacklist.push_back(value_text.substr(start, comma - start));
                if (comma == std::string::npos)
                    break;
                start = comma + 1;
            }
            return;
        }
        std::optional<std::string> normalized = index::normalize_alias(name);
        if (!normalized) {
            diagnostics.push_back(
                {index::Diagnostic::Level::Error,
                 "Ignoring bad option on kernel command line while parsing module name: '" +
                     std::string(name) + "'"});
            return;
        }
        std::replace(param.begin(), param.end(), '\t', ' ');
        options.push_back({std::move(*normalized), std::move(param)});
    };
    auto start_word = [&](size_t at) {
        modname = at;
        state = State::Modname;
        opened_by_quote = false;
        value = std::string_view::npos;
    };

    for (size_t i = 0; i <= text.size(); ++i) {
        char c = i < text.size() ? text[i] : '\0';
        if (c == '"') {
            quoted = !quoted;
            // A quote may only open a word; elsewhere it spoils all but a value.
            if (quoted && state == State::Modname && i == modname) {
                opened_by_quote = true;
                modname = i + 1;
            } else if (state != State::Value) {
                state = State::Ignore;
            }
        } else if (ends_word(c)) {
            if (quoted && state == State::Value) {
                // a blank inside a quoted value
            } else if (quoted) {
                state = State::Ignore;
            } else if (state == State::Value || state == State::Param) {
                complete(i);
                start_word(i + 1);
            } else {
                start_word(i + 1);
            }
        } else if (c == '.') {
            if (state == State::Modname) {
                dot = i;
                state = State::Param;
            } else if (state == State::Param) {
                state = State::Ignore;
            }
        } else if (c == '=') {
            if (state == State::Param) {
                value = i + 1;
                state = State::Value;
            } else if (state == State::Modname) {
                state = State::Ignore;
            }
        }
    }
}

} // namespace kmodd::loader
