/* SHA-1 and SHA-256 (FIPS 180-4), one-shot, for the TPM event log replay. Data is in low
 * memory; lengths are 32-bit. */
#ifndef MVG_SHA_H
#define MVG_SHA_H

#include "guest.h"

#define SHA1_SIZE 20
#define SHA256_SIZE 32

void sha1(const void *data, uint32_t len, uint8_t out[SHA1_SIZE]);
void sha256(const void *data, uint32_t len, uint8_t out[SHA256_SIZE]);

/* Shared by sha1.c and sha256.c: runs compress over data plus the padding (FIPS 180-4 §5.1.1:
 * 0x80, zeros, 64-bit big-endian bit length), starting from the nwords-word IV, and writes the
 * state big-endian to out. */
typedef void (*sha_compress_fn)(uint32_t *h, const uint8_t *block);
void sha_hash(const void *data, uint32_t len, uint8_t *out, const uint32_t *iv, unsigned nwords,
              sha_compress_fn compress);

static inline uint32_t rotl32(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }
static inline uint32_t rotr32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }
static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#endif
