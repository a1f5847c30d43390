/*
 * New-flow flood at the highest rate the machine gives (test/stress/line-rate.test.ts):
 * IPv4 UDP datagrams or TCP SYNs from SRC to DST:DPORT, the source port cycling over
 * 1024..65535 (and the TCP sequence number changing), written with sendmmsg on a raw socket
 * (IP_HDRINCL) in batches of 64 for SECONDS seconds. Prints "SENT <packets> <seconds>".
 *   cc -O2 -o flood_sender test/helpers/flood_sender.c && ./flood_sender udp|syn SRC DST DPORT SECONDS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64
#define LEN_UDP (20 + 8 + 8)
#define LEN_SYN (20 + 20)

static uint16_t csum(const void *p, size_t n, uint32_t sum) {
  const uint8_t *b = p;
  for (; n > 1; n -= 2, b += 2) sum += (uint32_t)(b[0] << 8 | b[1]);
  if (n) sum += (uint32_t)(b[0] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s udp|syn SRC DST DPORT SECONDS\n", argv[0]);
    return 2;
  }
  int syn = strcmp(argv[1], "syn") == 0;
  struct in_addr src, dst;
  if (!inet_pton(AF_INET, argv[2], &src) || !inet_pton(AF_INET, argv[3], &dst)) return 2;
  uint16_t dport = (uint16_t)atoi(argv[4]);
  double secs = atof(argv[5]);
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) { perror("socket"); return 1; }
  size_t len = syn ? LEN_SYN : LEN_UDP;
  static uint8_t pkt[BATCH][64];
  struct iovec iov[BATCH];
  struct mmsghdr msg[BATCH];
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = dst };
  memset(msg, 0, sizeof msg);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = pkt[i];
    iov[i].iov_len = len;
    msg[i].msg_hdr.msg_iov = &iov[i];
    msg[i].msg_hdr.msg_iovlen = 1;
    msg[i].msg_hdr.msg_name = &to;
    msg[i].msg_hdr.msg_namelen = sizeof to;
  }
  uint32_t sport = 0, seq = 1;
  unsigned long long sent = 0;
  double t0 = now_s(), t = t0;
  while (t - t0 < secs) {
    for (int i = 0; i < BATCH; i++) {
      uint8_t *ip = pkt[i], *l4 = ip + 20;
      memset(ip, 0, len);
      ip[0] = 0x45;
      put16(ip + 2, (uint16_t)len);
      ip[8] = 64;
      ip[9] = syn ? IPPROTO_TCP : IPPROTO_UDP;
      memcpy(ip + 12, &src, 4);
      memcpy(ip + 16, &dst, 4);
      put16(ip + 10, csum(ip, 20, 0));
      uint16_t sp = (uint16_t)(1024 + sport++ % 64512);
      put16(l4, sp);
      put16(l4 + 2, dport);
      /* pseudo-header sum */
      uint32_t ph = (uint32_t)(ip[12] << 8 | ip[13]) + (uint32_t)(ip[14] << 8 | ip[15]) + (uint32_t)(ip[16] << 8 | ip[17]) +
                    (uint32_t)(ip[18] << 8 | ip[19]) + ip[9] + (uint32_t)(len - 20);
      if (syn) {
        seq = seq * 1103515245u + 12345u;
        l4[4] = seq >> 24; l4[5] = seq >> 16; l4[6] = seq >> 8; l4[7] = seq;
        l4[12] = 5 << 4;
        l4[13] = 0x02;
        put16(l4 + 14, 1024);
        put16(l4 + 16, csum(l4, 20, ph));
      } else {
        put16(l4 + 4, 16);
        memcpy(l4 + 8, "flood!!!", 8);
        uint16_t c = csum(l4, 16, ph);
        put16(l4 + 6, c ? c : 0xffff);
      }
    }
    int n = sendmmsg(fd, msg, BATCH, 0);
    if (n < 0) { perror("sendmmsg"); return 1; }
    sent += (unsigned)n;
    t = now_s();
  }
  printf("SENT %llu %.3f\n", sent, t - t0);
  return 0;
}
