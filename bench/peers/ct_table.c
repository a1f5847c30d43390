/*
 * C reference for the connection-table lookup benchmark (bench/micro/conntrack.ts):
 * the same design as nfqwall's table written in C: one 64-byte record per entry (the
 * 10-word tuple, links of the ORIG and REPLY nodes), both directions linked into
 * nf_conntrack_buckets = N chains, HalfSipHash-2-4 over the 4 words of an IPv4 tuple
 * under a random key, and lookups of existing flows in the benchmark's order (stride 7919):
 * one at a time, and in batches of 64 (hash all, prefetch their buckets, then their first
 * records, then walk: what Conntrack.prefetchBatch does in JavaScript). Prints one JSON line
 * per size: how fast this machine can do it, the reference for nfqwall's ratios.
 *
 *   ct_table [N ...]          (default 1000 100000 1000000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROTL(x, b) (uint32_t)(((x) << (b)) | ((x) >> (32 - (b))))
#define SIPROUND                                                                                                                           \
  do {                                                                                                                                     \
    v0 += v1; v1 = ROTL(v1, 5); v1 ^= v0; v0 = ROTL(v0, 16);                                                                               \
    v2 += v3; v3 = ROTL(v3, 8); v3 ^= v2;                                                                                                  \
    v0 += v3; v3 = ROTL(v3, 7); v3 ^= v0;                                                                                                  \
    v2 += v1; v1 = ROTL(v1, 13); v1 ^= v2; v2 = ROTL(v2, 16);                                                                              \
  } while (0)

static uint32_t k0, k1;

static inline uint32_t hsip4(uint32_t m0, uint32_t m1, uint32_t m2, uint32_t m3) {
  uint32_t v0 = k0, v1 = k1, v2 = 0x6c796765 ^ k0, v3 = 0x74656462 ^ k1;
  uint32_t m[5] = {m0, m1, m2, m3, 16u << 24};
  for (int i = 0; i < 5; i++) {
    v3 ^= m[i];
    SIPROUND;
    SIPROUND;
    v0 ^= m[i];
  }
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v1 ^ v3;
}

typedef struct {
  uint32_t meta, src[4], dst[4], ports, rports, next[2], status, timeout[2];
} rec_t; /* 64 bytes */

/* The node of the tuple (meta, src -> server, ports) in the chain starting at node, or -1. */
static inline int32_t walk(const rec_t *rec, int32_t node, uint32_t meta, uint32_t src, uint32_t server, uint32_t ports) {
  while (node >= 0) {
    const rec_t *x = &rec[node >> 1];
    int match = (node & 1) == 0 ? x->meta == meta && x->src[0] == src && x->dst[0] == server && x->ports == ports
                                : x->meta == meta && x->dst[0] == src && x->src[0] == server && x->rports == ports;
    if (match) return node;
    node = (int32_t)x->next[node & 1];
  }
  return -1;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void run(uint32_t n) {
  uint32_t nb = n < 1024 ? 1024 : (n + 511) / 512 * 512;
  int32_t *heads = malloc((size_t)nb * 4);
  rec_t *rec = aligned_alloc(64, (size_t)n * sizeof(rec_t));
  memset(heads, 0xff, (size_t)nb * 4);
  memset(rec, 0, (size_t)n * sizeof(rec_t));
  const uint32_t meta = (4 << 8) | 17, server = (198u << 24) | (19u << 16) | 2;
  for (uint32_t e = 0; e < n; e++) {
    rec_t *r = &rec[e];
    r->meta = meta;
    r->src[0] = (198u << 24) | (18u << 16) | (e & 0xffff);
    r->dst[0] = server;
    r->ports = ((1024 + (e >> 16)) << 16) | 53;
    r->rports = (r->ports << 16) | (r->ports >> 16);
    uint32_t h[2] = {hsip4(meta, r->src[0], r->dst[0], r->ports), hsip4(meta, r->dst[0], r->src[0], r->rports)};
    for (int d = 0; d < 2; d++) {
      uint32_t b = (uint32_t)(((uint64_t)h[d] * nb) >> 32);
      r->next[d] = (uint32_t)heads[b];
      heads[b] = (int32_t)(2 * e + d);
    }
  }
  uint32_t rounds = 2000000 / n ? 2000000 / n : 1;
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    uint64_t found = 0;
    double t0 = now();
    for (uint32_t r = 0; r < rounds; r++) {
      for (uint32_t k = 0, i = 0; k < n; k++, i = (i + 7919) % n) {
        uint32_t src = (198u << 24) | (18u << 16) | (i & 0xffff), ports = ((1024 + (i >> 16)) << 16) | 53;
        uint32_t b = (uint32_t)(((uint64_t)hsip4(meta, src, server, ports) * nb) >> 32);
        if (walk(rec, heads[b], meta, src, server, ports) >= 0) found++;
      }
    }
    double s = now() - t0;
    if (found != (uint64_t)rounds * n) {
      fprintf(stderr, "ct_table: missed entries\n");
      exit(1);
    }
    double rate = rounds * (double)n / s;
    if (rate > best) best = rate;
  }
  /* batched: hash 64 keys, prefetch their buckets, then their first records, then walk */
  double bestb = 0;
  enum { B = 64 };
  uint32_t bs[B], bsrc[B], bports[B];
  int32_t bh[B];
  for (int rep = 0; rep < 3; rep++) {
    uint64_t found = 0;
    double t0 = now();
    for (uint32_t r = 0; r < rounds; r++) {
      uint32_t i = 0;
      for (uint32_t k = 0; k < n; k += B) {
        uint32_t cnt = n - k < B ? n - k : B;
        for (uint32_t j = 0; j < cnt; j++, i = (i + 7919) % n) {
          bsrc[j] = (198u << 24) | (18u << 16) | (i & 0xffff);
          bports[j] = ((1024 + (i >> 16)) << 16) | 53;
          bs[j] = (uint32_t)(((uint64_t)hsip4(meta, bsrc[j], server, bports[j]) * nb) >> 32);
          __builtin_prefetch(&heads[bs[j]]);
        }
        for (uint32_t j = 0; j < cnt; j++) {
          bh[j] = heads[bs[j]];
          if (bh[j] >= 0) __builtin_prefetch(&rec[bh[j] >> 1]);
        }
        for (uint32_t j = 0; j < cnt; j++) {
          if (walk(rec, bh[j], meta, bsrc[j], server, bports[j]) >= 0) found++;
        }
      }
    }
    double s = now() - t0;
    if (found != (uint64_t)rounds * n) {
      fprintf(stderr, "ct_table: batched missed entries\n");
      exit(1);
    }
    double rate = rounds * (double)n / s;
    if (rate > bestb) bestb = rate;
  }
  printf("{\"entries\":%u,\"lookups_per_s\":%.0f,\"batched_lookups_per_s\":%.0f}\n", n, best, bestb);
  free(heads);
  free(rec);
}

int main(int argc, char **argv) {
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(&k0, 4, 1, f) != 1 || fread(&k1, 4, 1, f) != 1) return 1;
  fclose(f);
  if (argc < 2) {
    run(1000);
    run(100000);
    run(1000000);
  }
  for (int i = 1; i < argc; i++) run((uint32_t)strtoul(argv[i], 0, 10));
  return 0;
}
