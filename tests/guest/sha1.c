/* SHA-1 (FIPS 180-4 §6.1) and the one-shot padding/driver shared with sha256.c (§5.1.1). */
#include "sha.h"

void sha_hash(const void *data, uint32_t len, uint8_t *out, const uint32_t *iv, unsigned nwords,
              sha_compress_fn compress)
{
    uint32_t h[8];
    uint8_t block[64];
    const uint8_t *p = data;
    memcpy(h, iv, nwords * 4);
    for (uint32_t left = len; left >= 64; left -= 64, p += 64)
        compress(h, p);
    uint32_t rest = len & 63;
    memset(block, 0, sizeof(block));
    memcpy(block, p, rest);
    block[rest] = 0x80;
    if (rest >= 56) {                   /* no room for the length: one more block */
        compress(h, block);
        memset(block, 0, sizeof(block));
    }
    for (unsigned i = 0; i < 5; i++)    /* bit length, big-endian, in bytes 59..63 */
        block[63 - i] = (uint8_t)(i < 4 ? (len << 3) >> (8 * i) : len >> 29);
    compress(h, block);
    for (unsigned i = 0; i < nwords * 4; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i & 3)));
}

static void sha1_compress(uint32_t *h, const uint8_t *block)
{
    uint32_t w[16];
    for (unsigned i = 0; i < 16; i++)
        w[i] = load_be32(block + 4 * i);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (unsigned t = 0; t < 80; t++) {
        if (t >= 16)                    /* 16-word ring buffer for the message schedule */
            w[t & 15] = rotl32(w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^ w[t & 15], 1);
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t tmp = rotl32(a, 5) + f + e + k + w[t & 15];
        e = d;
        d = c;
        c = rotl32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void sha1(const void *data, uint32_t len, uint8_t out[SHA1_SIZE])
{
    static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    sha_hash(data, len, out, iv, 5, sha1_compress);
}
