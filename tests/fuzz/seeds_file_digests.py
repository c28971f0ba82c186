"""Seeds of fuzz_file_digests (tests/fuzz/make_seeds.py)."""


def seeds():
    """-kernel-cache digest records (vmm/file_digests.hpp) for the stamp the target reads them with."""
    stamp = b"minivmm-digests 1\nstamp 2049 131077 8247232 1796604995547746658 1796604995547746659\n"
    sha = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
    return {"all-four": stamp + b"".join(f"{n} {'ab' * size}\n".encode() for n, size in sha.items()),
            "sha256-only": stamp + b"sha256 " + b"0f" * 32 + b"\n",
            "empty": stamp,
            "other-stamp": stamp.replace(b"2049", b"2050") + b"sha1 " + b"00" * 20 + b"\n"}
