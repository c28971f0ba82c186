"""Seeds of fuzz_ek_certificate (tests/fuzz/fuzz_ek_certificate.cpp): a selector byte, then
0/1: a TPM2_CreatePrimary response with the RSA / ECC EK as libtpms returns it (the EK Credential
Profile's templates L-1 and L-2 with the key filled in), 2: a DER certificate and a cut one,
3: PEM certificate and key text split at a NUL (a mismatched pair and garbage), 4: an antiReplay
nonce and a TPM 1.2 TPM_ReadPubek response for it (right and wrong checksum), 5: a DER certificate
behind the TPM 1.2 index's TCG_PCCLIENT_STORED_CERT header, and one with a wrong certSize."""
import hashlib
import struct
import subprocess
import tempfile

from seed_bytes import u8, u16, u32

POLICY_A = bytes.fromhex("837197674484B3F81A90CC8D46A5D724FD52D76E06520B64F2A1DA1B331469AA")


def public_area(rsa):
    """TPMT_PUBLIC of the EK template with a made-up key in `unique`."""
    head = u16(0x0001 if rsa else 0x0023) + u16(0x000B) + u32(0x000300B2) + u16(32) + POLICY_A
    head += u16(0x0006) + u16(128) + u16(0x0043) + u16(0x0010)
    if rsa:
        return head + u16(2048) + u32(0) + u16(256) + bytes(range(256))
    return head + u16(0x0003) + u16(0x0010) + u16(32) + bytes(range(32)) + u16(32) + bytes(range(32, 64))


def create_primary_response(rsa):
    public = public_area(rsa)
    params = u16(len(public)) + public + u16(0) + u16(0)  # outPublic, then the rest cut short
    body = u32(0x80000000) + u32(len(params)) + params
    return u16(0x8002) + u32(10 + len(body)) + u32(0) + body


def be16(v):
    return struct.pack(">H", v)


def be32(v):
    return struct.pack(">I", v)


def pubek_response(anti):
    """TPM_PUBKEY (RSA, RSAES-OAEP, 2048 bits, default exponent) and its checksum."""
    pubkey = be32(1) + be16(3) + be16(1) + be32(12) + be32(2048) + be32(2) + be32(0) + be32(256) + bytes(range(256))
    body = pubkey + hashlib.sha1(pubkey + anti).digest()
    return be16(0x00C4) + be32(10 + len(body)) + be32(0) + body


def stored_cert(der, size_delta=0):
    return be16(0x1001) + u8(0) + be16(len(der) + 2 + size_delta) + be16(0x1002) + der


def seeds():
    out = {"rsa-primary": u8(0) + create_primary_response(True), "ecc-primary": u8(1) + create_primary_response(False),
           "rsa-truncated": u8(0) + create_primary_response(True)[:200], "ecc-as-rsa": u8(0) + create_primary_response(False)}
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=seed CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "1"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", f"{d}/ca.pem", "-outform", "DER"], check=True,
                             capture_output=True).stdout
        pem, key = open(f"{d}/ca.pem", "rb").read(), open(f"{d}/ca.key", "rb").read()
    # Only a damaged start of the key goes into the corpus: no usable private key in the repository.
    bad_key = key.replace(b"PRIVATE KEY-----\n", b"PRIVATE KEY-----\nAAAA", 1)[:60]
    out.update({"der": u8(2) + der, "der-cut": u8(2) + der[:-7], "ca-pair-bad-key": u8(3) + pem + b"\0" + bad_key,
                "ca-no-key": u8(3) + pem, "tpm12-pubek": u8(4) + bytes(20) + pubek_response(bytes(20)),
                "tpm12-pubek-bad-checksum": u8(4) + bytes(range(20)) + pubek_response(bytes(20)),
                "tpm12-stored-cert": u8(5) + stored_cert(der), "tpm12-stored-cert-bad-size": u8(5) + stored_cert(der, 1), "ca-garbage": u8(3) + b"-----BEGIN CERTIFICATE-----\nAAAA\n"})
    return out
