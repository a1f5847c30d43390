/* The kernel's nfqueue_hash (include/linux/jhash.h, include/net/netfilter/nf_queue.h,
 * include/linux/kernel.h reciprocal_scale) as plain C, to compute the reference values of
 * test/unit/daemon/nfqueue-hash.test.ts:  cc -O2 -o /tmp/nqh test/helpers/nfqueue_hash.c && /tmp/nqh
 * Addresses are given as text and loaded as the kernel loads them (network-order bytes read
 * as a native u32 on this little-endian machine). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline uint32_t rol32(uint32_t w, unsigned s) { return (w << s) | (w >> ((-s) & 31)); }
#define JHASH_INITVAL 0xdeadbeef
#define __jhash_final(a, b, c) \
  {                            \
    c ^= b; c -= rol32(b, 14); \
    a ^= c; a -= rol32(c, 11); \
    b ^= a; b -= rol32(a, 25); \
    c ^= b; c -= rol32(b, 16); \
    a ^= c; a -= rol32(c, 4);  \
    b ^= a; b -= rol32(a, 14); \
    c ^= b; c -= rol32(b, 24); \
  }
static inline uint32_t __jhash_nwords(uint32_t a, uint32_t b, uint32_t c, uint32_t initval) {
  a += initval; b += initval; c += initval;
  __jhash_final(a, b, c);
  return c;
}
static inline uint32_t jhash_3words(uint32_t a, uint32_t b, uint32_t c, uint32_t initval) {
  return __jhash_nwords(a, b, c, initval + JHASH_INITVAL + (3 << 2));
}
static inline uint32_t reciprocal_scale(uint32_t val, uint32_t ep_ro) { return (uint32_t)(((uint64_t)val * ep_ro) >> 32); }

static uint32_t hash_v4(uint32_t saddr, uint32_t daddr, uint8_t protocol, uint32_t initval) {
  if (saddr < daddr) return jhash_3words(saddr, daddr, protocol, initval);
  return jhash_3words(daddr, saddr, protocol, initval);
}
static uint32_t hash_v6(const uint32_t* s, const uint32_t* d, uint32_t initval) {
  uint32_t a, b, c;
  if (s[3] < d[3]) { a = s[3]; b = d[3]; } else { b = s[3]; a = d[3]; }
  if (s[1] < d[1]) c = s[1]; else c = d[1];
  return jhash_3words(a, b, c, initval);
}

static void v4(const char* s, const char* d, int proto, uint32_t initval, int first, int total) {
  uint32_t sa, da;
  inet_pton(AF_INET, s, &sa);
  inet_pton(AF_INET, d, &da);
  uint32_t h = hash_v4(sa, da, proto, initval);
  printf("{ family: 4, src: '%s', dst: '%s', proto: %d, initval: 0x%08x, first: %d, total: %d, hash: 0x%08x, queue: %u },\n", s, d, proto, initval, first, total, h,
         first + reciprocal_scale(h, total));
}
static void v6(const char* s, const char* d, int proto, uint32_t initval, int first, int total) {
  uint32_t sa[4], da[4];
  inet_pton(AF_INET6, s, sa);
  inet_pton(AF_INET6, d, da);
  uint32_t h = hash_v6(sa, da, initval);
  printf("{ family: 6, src: '%s', dst: '%s', proto: %d, initval: 0x%08x, first: %d, total: %d, hash: 0x%08x, queue: %u },\n", s, d, proto, initval, first, total, h,
         first + reciprocal_scale(h, total));
}

int main(void) {
  v4("198.18.1.10", "198.19.2.1", 6, 0x12345678, 0, 2);
  v4("198.19.2.1", "198.18.1.10", 6, 0x12345678, 0, 2);
  v4("198.18.1.11", "198.19.2.1", 17, 0x12345678, 0, 2);
  v4("198.18.1.12", "198.19.2.1", 6, 0xdeadbeef, 4, 4);
  v4("198.18.0.1", "198.19.255.254", 1, 0x00000001, 0, 3);
  v4("198.18.200.7", "198.18.200.8", 6, 0xffffffff, 10, 16);
  v6("2001:2:0:1::10", "2001:2:0:2::1", 6, 0x12345678, 0, 2);
  v6("2001:2:0:2::1", "2001:2:0:1::10", 17, 0x12345678, 0, 2);
  v6("2001:2:0:1::1f", "2001:2:0:2::1", 6, 0x9e3779b9, 0, 5);
  v6("2001:2:ffff:1234::abcd", "2001:2::1", 58, 0x00000001, 2, 2);
  return 0;
}
