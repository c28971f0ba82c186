"""Seeds of fuzz_ek_certificate (tests/fuzz/fuzz_ek_certificate.cpp): a selector byte, then
0/1: a TPM2_CreatePrimary response with the RSA / ECC EK as libtpms returns it (the EK Credential
Profile's templates L-1 and L-2 with the key filled in), 2: a DER certificate and a cut one,
3: PEM certificate and key text split at a NUL (a mismatched pair and garbage)."""
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
                "ca-no-key": u8(3) + pem, "ca-garbage": u8(3) + b"-----BEGIN CERTIFICATE-----\nAAAA\n"})
    return out
