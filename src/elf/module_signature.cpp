// SPDX-License-Identifier: LGPL-2.1-or-later
// The appended module signature: the trailer, and the few fields of PKCS#7 modinfo shows.
#include "elf/module_signature.hpp"

#include <array>
#include <cstdint>
#include <cstdio>

namespace kmodd::elf {

namespace {

constexpr std::string_view kMagic = "~Module signature appended~\n";
constexpr size_t kTrailerSize = 12; // struct module_signature
constexpr std::array<const char*, 3> kIdTypes = {"PGP", "X509", "PKCS#7"};
constexpr uint8_t kIdPkcs7 = 2;
constexpr uint8_t kAlgoCount = 2; // dsa, rsa
constexpr std::array<const char*, 9> kHashNames = {"md4",    "md5",    "sha1",   "rmd160", "sha256",
                                                   "sha384", "sha512", "sha224", "sm3"};

/// The DER encodings of the digest algorithms kmod names, in kHashNames' order.
const std::array<std::string_view, 9> kHashOids = {
    std::string_view("\x2a\x86\x48\x86\xf7\x0d\x02\x04", 8),     // md4
    std::string_view("\x2a\x86\x48\x86\xf7\x0d\x02\x05", 8),     // md5
    std::string_view("\x2b\x0e\x03\x02\x1a", 5),                 // sha1
    std::string_view("\x2b\x24\x03\x02\x01", 5),                 // ripemd160
    std::string_view("\x60\x86\x48\x01\x65\x03\x04\x02\x01", 9), // sha256
    std::string_view("\x60\x86\x48\x01\x65\x03\x04\x02\x02", 9), // sha384
    std::string_view("\x60\x86\x48\x01\x65\x03\x04\x02\x03", 9), // sha512
    std::string_view("\x60\x86\x48\x01\x65\x03\x04\x02\x04", 9), // sha224
    std::string_view("\x2a\x81\x1c\xcf\x55\x01\x83\x11", 8),     // sm3
};
constexpr std::string_view kSignedDataOid("\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02", 9);
constexpr std::string_view kCommonNameOid("\x55\x04\x03", 3);

constexpr uint8_t kSequence = 0x30;
constexpr uint8_t kSet = 0x31;
constexpr uint8_t kInteger = 0x02;
constexpr uint8_t kOctetString = 0x04;
constexpr uint8_t kOid = 0x06;
constexpr uint8_t kContext0 = 0xA0;
constexpr uint8_t kContext1 = 0xA1;

/// A DER reader over a byte range: one element (tag, length, contents) at a time.
class Der {
public:
    explicit Der(std::string_view bytes) : rest_(bytes) {}

    [[nodiscard]] bool empty() const { return rest_.empty(); }
    [[nodiscard]] std::optional<uint8_t> peek_tag() const
    {
        return rest_.empty() ? std::nullopt
                             : std::optional<uint8_t>(static_cast<uint8_t>(rest_[0]));
    }

    /// The contents of the next element when its tag is `tag`; nullopt (nothing consumed)
    /// otherwise or when it is malformed.
    std::optional<std::string_view> take(uint8_t tag)
    {
        if (rest_.size() < 2 || static_cast<uint8_t>(rest_[0]) != tag)
            return std::nullopt;
        size_t at = 1;
        size_t length = static_cast<uint8_t>(rest_[at++]);
        if (length & 0x80) {
            const size_t count = length & 0x7F;
            if (count == 0 || count > 4 || rest_.size() < at + count)
                return std::nullopt; // indefinite lengths are no DER
            length = 0;
            for (size_t i = 0; i < count; ++i)
                length = (length << 8) | static_cast<uint8_t>(rest_[at++]);
        }
        if (length > rest_.size() - at)
            return std::nullopt;
        std::string_view contents = rest_.substr(at, length);
        rest_.remove_prefix(at + length);
        return contents;
    }

    /// Skips the next element if its tag is `tag`.
    void skip_if(uint8_t tag)
    {
        if (peek_tag() == tag)
            (void)take(tag);
    }

private:
    std::string_view rest_;
};

/// The value of the first commonName of an X.501 Name, "" when it has none.
std::optional<std::string> common_name(std::string_view name)
{
    Der rdns(name);
    while (!rdns.empty()) {
        auto rdn = rdns.take(kSet);
        if (!rdn)
            return std::nullopt;
        Der attributes(*rdn);
        while (!attributes.empty()) {
            auto attribute = attributes.take(kSequence);
            if (!attribute)
                return std::nullopt;
            Der fields(*attribute);
            auto type = fields.take(kOid);
            auto tag = fields.peek_tag();
            if (!type || !tag)
                return std::nullopt;
            auto value = fields.take(*tag);
            if (!value)
                return std::nullopt;
            if (*type == kCommonNameOid)
                return std::string(*value);
        }
    }
    return std::string();
}

/// kmod's fill_pkcs7: the signer's issuer commonName and serial, digest and encrypted digest.
std::optional<SignatureInfo> read_pkcs7(std::string_view blob)
{
    auto content_info = Der(blob).take(kSequence);
    if (!content_info)
        return std::nullopt;
    Der outer(*content_info);
    auto type = outer.take(kOid);
    auto explicit_content = outer.take(kContext0);
    if (!type || *type != kSignedDataOid || !explicit_content)
        return std::nullopt;
    auto signed_data = Der(*explicit_content).take(kSequence);
    if (!signed_data)
        return std::nullopt;
    Der fields(*signed_data);
    if (!fields.take(kInteger) || !fields.take(kSet) || !fields.take(kSequence))
        return std::nullopt;
    fields.skip_if(kContext0); // certificates
    fields.skip_if(kContext1); // crls
    auto signer_infos = fields.take(kSet);
    if (!signer_infos)
        return std::nullopt;
    auto signer_info = Der(*signer_infos).take(kSequence);
    if (!signer_info)
        return std::nullopt;
    Der signer(*signer_info);
    if (!signer.take(kInteger))
        return std::nullopt;
    auto issuer_and_serial = signer.take(kSequence); // a [0] subjectKeyIdentifier is no PKCS#7
    auto digest_algorithm = signer.take(kSequence);
    if (!issuer_and_serial || !digest_algorithm)
        return std::nullopt;
    signer.skip_if(kContext0); // authenticated attributes
    auto encryption_algorithm = signer.take(kSequence);
    auto encrypted_digest = signer.take(kOctetString);
    if (!encryption_algorithm || !encrypted_digest)
        return std::nullopt;

    Der issuer_fields(*issuer_and_serial);
    auto issuer = issuer_fields.take(kSequence);
    auto serial = issuer_fields.take(kInteger);
    if (!issuer || !serial || serial->empty())
        return std::nullopt;
    auto cn = common_name(*issuer);
    if (!cn)
        return std::nullopt;
    // As OpenSSL keeps an INTEGER: without the zero that only marks it positive.
    if (serial->size() > 1 && (*serial)[0] == '\0')
        serial->remove_prefix(1);

    auto algorithm = Der(*digest_algorithm).take(kOid);
    if (!algorithm)
        return std::nullopt;
    for (size_t i = 0; i < kHashOids.size(); ++i) {
        if (*algorithm == kHashOids[i])
            return SignatureInfo{kIdTypes[kIdPkcs7], std::move(*cn), std::string(*serial),
                                 kHashNames[i], std::string(*encrypted_digest)};
    }
    return std::nullopt;
}

} // namespace

std::optional<SignatureInfo> read_signature(std::string_view image)
{
    if (!image.ends_with(kMagic))
        return std::nullopt;
    size_t size = image.size() - kMagic.size();
    if (size < kTrailerSize)
        return std::nullopt;
    size -= kTrailerSize;
    const auto* trailer = reinterpret_cast<const unsigned char*>(image.data() + size);
    const uint8_t algo = trailer[0];
    const uint8_t hash = trailer[1];
    const uint8_t id_type = trailer[2];
    const size_t signer_len = trailer[3];
    const size_t key_id_len = trailer[4];
    const size_t sig_len = (size_t{trailer[8]} << 24) | (size_t{trailer[9]} << 16) |
                           (size_t{trailer[10]} << 8) | size_t{trailer[11]};
    if (algo >= kAlgoCount || hash >= kHashNames.size() || id_type >= kIdTypes.size())
        return std::nullopt;
    if (sig_len == 0 || size < signer_len + key_id_len + sig_len)
        return std::nullopt;
    if (id_type == kIdPkcs7)
        return read_pkcs7(image.substr(size - sig_len, sig_len));
    // PGP and X509: the trailer's own fields, before the signature.
    SignatureInfo info;
    info.id_type = kIdTypes[id_type];
    info.hash_algo = kHashNames[hash];
    size -= sig_len;
    info.signature = std::string(image.substr(size, sig_len));
    size -= key_id_len;
    info.key_id = std::string(image.substr(size, key_id_len));
    size -= signer_len;
    info.signer = std::string(image.substr(size, signer_len));
    return info;
}

std::string signature_hex(std::string_view bytes)
{
    std::string text;
    text.reserve(bytes.size() * 3 + bytes.size() / 20 * 3);
    for (size_t i = 0; i < bytes.size(); ++i) {
        char pair[3];
        std::snprintf(pair, sizeof pair, "%02X", static_cast<unsigned char>(bytes[i]));
        text += pair;
        if (i + 1 < bytes.size()) {
            text += ':';
            if ((i + 1) % 20 == 0)
                text += "\n\t\t";
        }
    }
    return text;
}

} // namespace kmodd::elf
