// SPDX-License-Identifier: LGPL-2.1-or-later
// ModprobeConfig against kmod's own parser (kmod 30 on Debian 12, 34 on Debian 13): `modprobe -c`
// prints the configuration it parsed, then "# End of configuration files" and index dumps; the part
// before that must be byte for byte our dump(), and every error we report must be one kmod printed.
// Skipped where /usr/sbin/modprobe is not kmod.
#include <gtest/gtest.h>

#include <fcntl.h>

#include <string>
#include <vector>

#include "base/file.hpp"
#include "loader/modprobe_config.hpp"
#include "temp_tree.hpp"

namespace kmodd::loader {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModprobe = "/usr/sbin/modprobe";
constexpr std::string_view kConfigEnd = "\n# End of configuration files. Dumping indexes now:\n";

struct KmodOutput {
    int status = -1;
    std::string config; ///< stdout up to the end-of-configuration marker
    std::string errors; ///< stderr
};

bool have_kmod()
{
    std::string out;
    return test::run_shell(std::string(kModprobe) + " -V", &out) == 0 &&
           out.find("kmod version ") != std::string::npos;
}

class ModprobeConfigOracle : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (!have_kmod())
            GTEST_SKIP() << kModprobe << " is not kmod";
        fs::create_directories(tree.root() / "scratch");
    }

    /// Runs `modprobe -c` on `paths` with the module dir <root>/lib/modules/1.0; with a
    /// `cmdline`, in a private mount namespace where that text is /proc/cmdline.
    KmodOutput run_kmod(const std::vector<std::string>& paths,
                        const std::string* cmdline = nullptr) const
    {
        std::string command = "exec env -u MODPROBE_OPTIONS " + std::string(kModprobe) + " -c";
        for (const std::string& path : paths)
            command += " -C '" + path + "'";
        command += " -d '" + tree.root().string() + "' -S " + tree.version();
        command += " >'" + scratch("out") + "' 2>'" + scratch("err") + "'";
        if (cmdline != nullptr) {
            tree.write("/scratch/cmdline", *cmdline);
            tree.write("/scratch/run.sh", "mount --bind '" + scratch("cmdline") +
                                              "' /proc/cmdline || exit 99\n" + command + "\n");
            command = "unshare -m sh '" + scratch("run.sh") + "'";
        }
        KmodOutput result;
        result.status = test::run_shell(command);
        std::string out = test::slurp(scratch("out"));
        size_t end = out.find(kConfigEnd);
        // A faked /proc/cmdline may be refused (in a chroot): can_fake_cmdline() then skips.
        if (cmdline == nullptr || result.status == 0) {
            EXPECT_NE(end, std::string::npos) << out;
        }
        result.config = out.substr(0, end);
        result.errors = test::slurp(scratch("err"));
        return result;
    }

    /// Whether kmod can be run with a /proc/cmdline of ours (needs mount namespaces).
    bool can_fake_cmdline() const
    {
        std::string probe = "probe.x=1\n";
        KmodOutput out = run_kmod({empty_conf()}, &probe);
        return out.status == 0 && out.config == "options probe x=1\n";
    }

    /// An empty config file, so that kmod reads no default directory.
    std::string empty_conf() const
    {
        tree.write("/scratch/empty.conf", "");
        return scratch("empty.conf");
    }

    std::string scratch(const std::string& name) const
    {
        return (tree.root() / "scratch" / name).string();
    }

    static std::string proc_cmdline()
    {
        auto text = base::read_file(AT_FDCWD, "/proc/cmdline");
        return text ? *text : std::string();
    }

    /// Every error of ours appears in kmod's stderr, and kmod printed no other error.
    static void expect_same_errors(const index::Diagnostics& ours, const std::string& kmod)
    {
        size_t errors = 0;
        for (const index::Diagnostic& d : ours) {
            if (d.level != index::Diagnostic::Level::Error)
                continue;
            ++errors;
            EXPECT_NE(kmod.find(": " + d.message + "\n"), std::string::npos)
                << "'" << d.message << "' not in:\n"
                << kmod;
        }
        size_t kmod_errors = 0;
        for (size_t at = kmod.find("ERROR"); at != std::string::npos;
             at = kmod.find("ERROR", at + 1))
            ++kmod_errors;
        EXPECT_EQ(errors, kmod_errors) << kmod;
    }

    test::TempTree tree{"1.0"};
};

TEST_F(ModprobeConfigOracle, EveryDirectiveDumpsLikeModprobeC)
{
    tree.write("/conf/all.conf",
               "# every directive kmod 30 knows, and broken ones\n"
               "alias pci:v00001234d*sv*sd*bc*sc*i* snd-foo\n"
               "alias usb:v1234p[0-9a-f]*-x usb-bar[1-2]\n"
               "alias\tmy-alias\tsnd-foo\textra\n"
               "options snd-foo index=0 model=auto\n"
               "options  my-alias   enable=1\tid=\"x y\"  \n"
               "options snd-foo \\\n"
               "    continued=1 \\\n"
               "    more=2\n"
               "install snd-foo /sbin/modprobe --ignore-install snd-foo $CMDLINE_OPTS && echo\tok\n"
               "install net-pf-*  /bin/true\n"
               "remove snd-foo /sbin/modprobe -r --ignore-remove snd-foo\n"
               "blacklist pcspkr\n"
               "blacklist snd-pcsp trailing words\n"
               "softdep snd-foo pre: snd-dep1 snd-dep2 post: snd-post\n"
               "softdep xhci_* post: usb-storage\n"
               "softdep only-pre pre:\ta\vb\n"
               "softdep spaced  pre: hidden\n"
               "softdep none junk\n"
               "  # an indented comment is a bad line\n"
               "bogus directive\n"
               "alias missing-module\n"
               "options a[b broken\n"
               "options nothing \n"
               "include /etc/other.conf\n"
               "config whatever\n"
               "blacklist x\\y\n"
               "options last 1");
    std::string conf = (tree.root() / "conf/all.conf").string();
    KmodOutput kmod = run_kmod({conf});

    index::Diagnostics diagnostics;
    auto config =
        ModprobeConfig::load({conf}, tree.module_dir().string(), proc_cmdline(), diagnostics);
    EXPECT_EQ(config.dump(), kmod.config);
    expect_same_errors(diagnostics, kmod.errors);
    EXPECT_GE(diagnostics.size(), 6U);
}

TEST_F(ModprobeConfigOracle, FilesFromSeveralPathsAndTheModuleDirSortLikeModprobeC)
{
    tree.write("/d1/b.conf", "alias b d1\n");
    tree.write("/d1/z.conf", "alias z d1\nbad line\n");
    tree.write("/d1/.hidden.conf", "alias hidden d1\n");
    tree.write("/d1/readme", "alias readme d1\n");
    fs::create_directories(tree.root() / "d1/sub.conf");
    tree.write("/d2/a.conf", "alias a d2\n");
    tree.write("/d2/b.conf", "alias b d2\n");
    tree.write("/d2/n.conf", "alias n d2\n");
    tree.write("/single/m-file", "alias m single\n");
    tree.write("/single/modules.softdep", "softdep shadowed pre: x\n");
    tree.write("modules.softdep", "# Soft dependencies extracted from modules themselves.\n"
                                  "softdep mod-a pre: mod-b post: mod-c\n");
    std::string root = tree.root().string();
    std::vector<std::string> paths = {root + "/d1", root + "/d2", root + "/single/m-file",
                                      root + "/missing", root + "/single/modules.softdep"};
    KmodOutput kmod = run_kmod(paths);

    index::Diagnostics diagnostics;
    auto config =
        ModprobeConfig::load(paths, tree.module_dir().string(), proc_cmdline(), diagnostics);
    EXPECT_EQ(config.dump(), kmod.config);
    expect_same_errors(diagnostics, kmod.errors);
    EXPECT_NE(kmod.config.find("softdep mod_a"), std::string::npos) << kmod.config;
}

TEST_F(ModprobeConfigOracle, ThisSystemsConfigurationDumpsLikeModprobeC)
{
    KmodOutput kmod = run_kmod({}); // kmod's default directories
    index::Diagnostics diagnostics;
    auto config = ModprobeConfig::load(ModprobeConfig::default_paths(), tree.module_dir().string(),
                                       proc_cmdline(), diagnostics);
    EXPECT_EQ(config.dump(), kmod.config);
    expect_same_errors(diagnostics, kmod.errors);
}

TEST_F(ModprobeConfigOracle, KernelCommandLinesParseLikeModprobeC)
{
    if (!can_fake_cmdline())
        GTEST_SKIP() << "cannot bind-mount over /proc/cmdline here (unshare -m)";
    std::string long_line(4090, 'x');
    long_line += " m.p=123456";
    std::vector<std::string> cmdlines = {
        // kmod 30's testsuite, module-param-kcmdline{,2..8}/proc/cmdline
        "initrd=\\initramfs-linux.img mod_simple.foo mod_simple.bar=1 root=/dev/sda2 "
        "rootfstype=ext4 add_efi_memmap quiet rw\n",
        "psmouse.foo psmouse.bar=1 quiet rw\n",
        "BOOT_IMAGE=/boot/vmlinuz-3.12.12-57.g5f654cf-default initrd=\\initramfs-linux.img "
        "psmouse.foo psmouse.bar=1 root=/dev/sda2 rootfstype=ext4 add_efi_memmap quiet rw\n",
        "testmodule.testparam=1.5G\n",
        "psmouse.foo psmouse.bar=1 psmouse.foobar=\"test 1\" psmouse.\"invalid option\" "
        "\" notamodule\" \"noteamodule2 \" notamodule3 quiet rw\n",
        "psmouse.foo=2 ivrs_acpihid[14:00.5]=AMD0020:00 psmouse.bar=1 psmouse.zinga=test\n",
        "psmouse.foo parport.dyndbg=\"file drivers/parport/ieee1284_ops.c +mpf\" quiet rw\n",
        "psmouse.foo \"parport.dyndbg=file drivers/parport/ieee1284_ops.c +mpf\" quiet rw\n",
        // our own odd cases
        "modprobe.blacklist=a-b,,c modprobe.blacklist= \"modprobe.blacklist=x,y\" modprobe.f=1\n",
        "a.b.c=1 a=b.c .x=1 \"q\"m.p=1 m\"x.p=1\" n.q=2 m.p\"=1\"\n",
        "m.p=a\"b c\"d e.f \"m.p=a b\"c \"m.p\" x.y=\"a\tb\" tab.x=1\tdash-mod.p=v mod.\n",
        "m.p=\"v\"w a.b=1 m.p=\"open c.d=2 e.f=3\n",
        "bad]x.p=1 ok[a-b].p=2 x[.p=3\r\nafter.newline=1\n",
        long_line,
    };
    for (const std::string& cmdline : cmdlines) {
        KmodOutput kmod = run_kmod({empty_conf()}, &cmdline);
        ModprobeConfig config;
        index::Diagnostics diagnostics;
        config.parse_kernel_cmdline(cmdline, diagnostics);
        EXPECT_EQ(config.dump(), kmod.config) << cmdline;
        expect_same_errors(diagnostics, kmod.errors);
    }
}

} // namespace
} // namespace kmodd::loader
