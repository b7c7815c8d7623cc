// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "elf/module_signature.hpp"

namespace kmodd::elf {
namespace {

/// An image with a signature of the trailer's own kind (PGP, X509): signer, key id and
/// signature before struct module_signature and the magic.
std::string signed_image(uint8_t id_type, uint8_t hash, const std::string& signer,
                         const std::string& key_id, const std::string& signature)
{
    std::string image = "\x7f"
                        "ELF rest of the module";
    image += signer + key_id + signature;
    image += static_cast<char>(1); // rsa
    image += static_cast<char>(hash);
    image += static_cast<char>(id_type);
    image += static_cast<char>(signer.size());
    image += static_cast<char>(key_id.size());
    image += std::string(3, '\0');
    const size_t length = signature.size();
    for (int shift = 24; shift >= 0; shift -= 8)
        image += static_cast<char>((length >> shift) & 0xFF);
    return image + "~Module signature appended~\n";
}

TEST(ModuleSignature, TheTrailerNamesSignerKeyHashAndSignatureOfAnX509Signature)
{
    auto info = read_signature(signed_image(1, 4, "Example CA", "\x01\x02", "\xAB\xCD\xEF"));
    ASSERT_TRUE(info);
    EXPECT_EQ(info->id_type, "X509");
    EXPECT_EQ(info->signer, "Example CA");
    EXPECT_EQ(signature_hex(info->key_id), "01:02");
    EXPECT_EQ(info->hash_algo, "sha256");
    EXPECT_EQ(signature_hex(info->signature), "AB:CD:EF");
}

TEST(ModuleSignature, NoneWhenUnsignedOutOfRangeOrTooShortForItsLengths)
{
    EXPECT_FALSE(read_signature("\x7f"
                                "ELF unsigned module"));
    EXPECT_FALSE(read_signature("~Module signature appended~\n")) << "no trailer";
    EXPECT_FALSE(read_signature(signed_image(3, 4, "s", "k", "sig"))) << "id type out of range";
    EXPECT_FALSE(read_signature(signed_image(1, 9, "s", "k", "sig"))) << "hash out of range";
    EXPECT_FALSE(read_signature(signed_image(1, 4, "s", "k", ""))) << "an empty signature";
    std::string image = signed_image(1, 4, "s", "k", "sig");
    image[image.size() - 29] = 100; // sig_len's last byte: far more than the file holds
    EXPECT_FALSE(read_signature(image));
    EXPECT_FALSE(read_signature(signed_image(2, 0, "", "", "not DER at all")))
        << "a PKCS#7 blob kmod cannot parse gives no signature, as kmod's";
}

TEST(ModuleSignature, HexWrapsAfterEveryTwentiethByteButTheLast)
{
    EXPECT_EQ(signature_hex(""), "");
    EXPECT_EQ(signature_hex(std::string(20, '\x5e')).find('\n'), std::string::npos);
    std::string hex = signature_hex(std::string(41, '\x01'));
    EXPECT_EQ(hex.substr(57, 5), "01:\n\t") << "after the 20th byte";
    EXPECT_EQ(std::count(hex.begin(), hex.end(), '\n'), 2);
    EXPECT_TRUE(hex.ends_with("\t\t01")) << "the 41st byte alone on the last line";
}

} // namespace
} // namespace kmodd::elf
