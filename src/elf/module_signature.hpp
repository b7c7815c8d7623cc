// SPDX-License-Identifier: LGPL-2.1-or-later
// The signature appended to a module file, as modinfo shows it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kmodd::elf {

/// What modinfo prints of a module's appended signature ("~Module signature appended~\n" at
/// the end of the image, after struct module_signature).
struct SignatureInfo {
    std::string id_type;   ///< "PGP", "X509" or "PKCS#7"
    std::string signer;    ///< the signer's name (PKCS#7: the issuer's commonName)
    std::string key_id;    ///< raw bytes (PKCS#7: the issuer serial number)
    std::string hash_algo; ///< "sha256", ...
    std::string signature; ///< raw bytes (PKCS#7: the signer's encryptedDigest)
};

/// The signature of an uncompressed module image, read as kmod 30 (built with OpenSSL)
/// reads it; nullopt when there is none, or when kmod would show none: a trailer whose
/// algorithm, hash or id type is out of range or whose lengths do not fit, a PKCS#7 blob
/// that is not DER SignedData with a signer info of issuer and serial number, or whose
/// digest algorithm is not one kmod names. Never reads outside `image`.
[[nodiscard]] std::optional<SignatureInfo> read_signature(std::string_view image);

/// kmod's hex form of raw bytes: "5E:E1:13:...", a newline and two tabs after every 20th
/// byte but the last.
[[nodiscard]] std::string signature_hex(std::string_view bytes);

} // namespace kmodd::elf
