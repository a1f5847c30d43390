/* Copied from the team's shared NFQUEUE benchmark harness (/work/shared/bench/src/nfq_batch.c), unchanged
 * below this comment. Built by bench/run.ts (make -C bench/peers) into bench/build/. */
/* nfq_batch: the fastest reasonable NFQUEUE accept-all consumer (libmnl, no
 * libnetfilter_queue).  recvmmsg() pulls up to -b messages per syscall, one
 * NFQNL_MSG_VERDICT_BATCH (ACCEPT, highest id) answers them all.
 * Copy mode NFQNL_COPY_PACKET (-r range, default 0xffff), NFQA_CFG_F_GSO,
 * 8 MiB rcvbuf (SO_RCVBUFFORCE), NETLINK_NO_ENOBUFS, queue maxlen -m
 * (default 8192), -f sets NFQA_CFG_F_FAIL_OPEN.
 *
 * Built with -DSTATEFUL it becomes nfq_stateful: per packet it parses the
 * IPv4 header, looks the canonical 5-tuple up in an open-addressing hash
 * table (1<<21 slots), and applies the same policy as the kernel-stateful
 * ruleset: known flow -> ACCEPT; new flow to a port in -P LO:HI (TCP/UDP) or
 * ICMP -> insert + ACCEPT; anything else -> DROP (own verdict, the batch is
 * split around it).  No expiry (the table is sized for one benchmark run).
 *
 * Usage: nfq_batch [-q QUEUE] [-b BATCH] [-m MAXLEN] [-r COPYRANGE] [-f] [-P LO:HI]
 * One stats line on stderr at SIGTERM/SIGINT. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <getopt.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libmnl/libmnl.h>

#define MAX_BATCH 256
#define RXBUF (0x10000 + 8192)

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static unsigned long long npkts, nbytes, nrecv_calls, nverdict_msgs, nenobufs, ntrunc;
#ifdef STATEFUL
static unsigned long long nnew, nest, ndrop, nfull, ninvalid;
#endif

static struct nlmsghdr *nfq_put(char *buf, int type, uint16_t q, uint16_t flags) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
    nfg->nfgen_family = AF_UNSPEC;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = htons(q);
    return nlh;
}

static int send_ack(struct mnl_socket *nl, struct nlmsghdr *nlh, const char *what) {
    static char rbuf[16384];
    nlh->nlmsg_seq = (uint32_t)time(NULL);
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) { perror(what); return -1; }
    ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof rbuf);
    if (n < 0) { perror(what); return -1; }
    if (mnl_cb_run(rbuf, (size_t)n, 0, mnl_socket_get_portid(nl), NULL, NULL) < 0) { perror(what); return -1; }
    return 0;
}

#ifdef STATEFUL
struct ct { uint32_t a, b; uint16_t pa, pb; uint8_t proto, used; uint8_t pad[2]; };
#define CT_BITS 21
#define CT_SIZE (1u << CT_BITS)
#define CT_PROBES 64
static struct ct *table;
static unsigned port_lo = 5200, port_hi = 5299;

static inline uint32_t hash5(uint32_t a, uint32_t b, uint16_t pa, uint16_t pb, uint8_t p) {
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    h ^= ((uint64_t)pa << 24 | (uint64_t)pb << 8 | p) * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    return (uint32_t)(h >> (64 - CT_BITS));
}

/* returns NF_ACCEPT or NF_DROP */
static int track(const unsigned char *p, int len) {
    if (len < 20 || (p[0] >> 4) != 4) { ninvalid++; return NF_ACCEPT; } /* not IPv4: accept (bench only) */
    int ihl = (p[0] & 15) * 4;
    uint8_t proto = p[9];
    uint32_t s, d; memcpy(&s, p + 12, 4); memcpy(&d, p + 16, 4);
    uint16_t sp = 0, dp = 0;
    if (proto == 6 || proto == 17) {
        if (len < ihl + 4) { ninvalid++; return NF_DROP; }
        sp = (uint16_t)(p[ihl] << 8 | p[ihl + 1]);
        dp = (uint16_t)(p[ihl + 2] << 8 | p[ihl + 3]);
    }
    /* canonical order so both directions share one entry */
    uint32_t a = s, b = d; uint16_t pa = sp, pb = dp;
    if (a > b || (a == b && pa > pb)) { a = d; b = s; pa = dp; pb = sp; }
    uint32_t i = hash5(a, b, pa, pb, proto);
    int free_slot = -1;
    for (int k = 0; k < CT_PROBES; k++) {
        struct ct *e = &table[(i + k) & (CT_SIZE - 1)];
        if (!e->used) { free_slot = (int)((i + k) & (CT_SIZE - 1)); break; }
        if (e->a == a && e->b == b && e->pa == pa && e->pb == pb && e->proto == proto) { nest++; return NF_ACCEPT; }
    }
    int allow = (proto == 1) || ((proto == 6 || proto == 17) && dp >= port_lo && dp <= port_hi);
    if (!allow) { ndrop++; return NF_DROP; }
    if (free_slot < 0) { nfull++; return NF_ACCEPT; }
    struct ct *e = &table[free_slot];
    e->a = a; e->b = b; e->pa = pa; e->pb = pb; e->proto = proto; e->used = 1;
    nnew++;
    return NF_ACCEPT;
}
#endif

static char vbuf[MAX_BATCH * 64 + 4096];
static size_t vlen;

static void verdict_add(int type, uint16_t q, uint32_t id, int verdict) {
    struct nlmsghdr *nlh = nfq_put(vbuf + vlen, type, q, 0);
    struct nfqnl_msg_verdict_hdr vh = { .verdict = htonl((uint32_t)verdict), .id = htonl(id) };
    mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof vh, &vh);
    vlen += NLMSG_ALIGN(nlh->nlmsg_len);
}

static void verdict_flush(struct mnl_socket *nl) {
    if (!vlen) return;
    if (mnl_socket_sendto(nl, vbuf, vlen) < 0 && errno != EINTR) perror("sendto(verdict)");
    nverdict_msgs++;
    vlen = 0;
}

int main(int argc, char **argv) {
    int qnum = 0, batch = 64, maxlen = 8192, copy_range = 0xffff, fail_open = 0, c;
    while ((c = getopt(argc, argv, "q:b:m:r:fP:")) != -1) {
        switch (c) {
        case 'q': qnum = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'm': maxlen = atoi(optarg); break;
        case 'r': copy_range = atoi(optarg); break;
        case 'f': fail_open = 1; break;
#ifdef STATEFUL
        case 'P': if (sscanf(optarg, "%u:%u", &port_lo, &port_hi) != 2) return 2; break;
#else
        case 'P': break;
#endif
        default:
            fprintf(stderr, "usage: %s [-q queue] [-b batch] [-m maxlen] [-r copyrange] [-f] [-P lo:hi]\n", argv[0]);
            return 2;
        }
    }
    if (batch < 1) batch = 1;
    if (batch > MAX_BATCH) batch = MAX_BATCH;
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_sig;
    sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);
#ifdef STATEFUL
    table = calloc(CT_SIZE, sizeof *table);
    if (!table) { perror("calloc"); return 1; }
#endif

    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl) { perror("mnl_socket_open"); return 1; }
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) { perror("mnl_socket_bind"); return 1; }
    int fd = mnl_socket_get_fd(nl);
    int rcv = 8 << 20, one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

    char cbuf[8192];
    struct nlmsghdr *nlh = nfq_put(cbuf, NFQNL_MSG_CONFIG, (uint16_t)qnum, NLM_F_ACK);
    struct nfqnl_msg_config_cmd cmd = { .command = NFQNL_CFG_CMD_BIND, .pf = htons(AF_INET) };
    mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof cmd, &cmd);
    if (send_ack(nl, nlh, "bind queue") < 0) return 1;

    nlh = nfq_put(cbuf, NFQNL_MSG_CONFIG, (uint16_t)qnum, NLM_F_ACK);
    struct nfqnl_msg_config_params params = { .copy_range = htonl((uint32_t)copy_range), .copy_mode = NFQNL_COPY_PACKET };
    mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof params, &params);
    uint32_t flags = NFQA_CFG_F_GSO | (fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl((uint32_t)maxlen));
    if (send_ack(nl, nlh, "config queue") < 0) return 1;
    fprintf(stderr, "%s: bound queue %d batch=%d maxlen=%d copy_range=%d fail_open=%d\n",
            argv[0], qnum, batch, maxlen, copy_range, fail_open);

    static char bufs[MAX_BATCH][RXBUF] __attribute__((aligned(16)));
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    for (int i = 0; i < MAX_BATCH; i++) {
        iov[i].iov_base = bufs[i]; iov[i].iov_len = RXBUF;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int pkt_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
    while (!stop) {
        int n = recvmmsg(fd, msgs, (unsigned)batch, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) { nenobufs++; continue; }
            perror("recvmmsg");
            break;
        }
        nrecv_calls++;
        uint32_t max_accept = 0; int have_accept = 0;
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ntrunc++;
            int len = (int)msgs[i].msg_len;
            for (struct nlmsghdr *h = (struct nlmsghdr *)bufs[i]; mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
                if (h->nlmsg_type != pkt_type) continue;
                uint32_t id = 0; int have_id = 0;
                const unsigned char *pl = NULL; int pllen = 0;
                struct nlattr *attr;
                mnl_attr_for_each(attr, h, sizeof(struct nfgenmsg)) {
                    uint16_t t = mnl_attr_get_type(attr);
                    if (t == NFQA_PACKET_HDR) {
                        const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr);
                        id = ntohl(ph->packet_id); have_id = 1;
                    } else if (t == NFQA_PAYLOAD) {
                        pl = mnl_attr_get_payload(attr); pllen = (int)mnl_attr_get_payload_len(attr);
                    }
                }
                if (!have_id) continue;
                npkts++; nbytes += (unsigned)pllen;
#ifdef STATEFUL
                if (track(pl, pllen) == NF_DROP) {
                    if (have_accept) { verdict_add(NFQNL_MSG_VERDICT_BATCH, (uint16_t)qnum, max_accept, NF_ACCEPT); have_accept = 0; }
                    verdict_add(NFQNL_MSG_VERDICT, (uint16_t)qnum, id, NF_DROP);
                    if (vlen > sizeof vbuf - 256) verdict_flush(nl);
                    continue;
                }
#else
                (void)pl;
#endif
                max_accept = id; have_accept = 1;
            }
        }
        if (have_accept) verdict_add(NFQNL_MSG_VERDICT_BATCH, (uint16_t)qnum, max_accept, NF_ACCEPT);
        verdict_flush(nl);
    }
    fprintf(stderr, "%s: queue=%d packets=%llu bytes=%llu recv_calls=%llu verdict_sends=%llu enobufs=%llu truncated=%llu"
#ifdef STATEFUL
            " new=%llu established=%llu dropped=%llu table_full=%llu invalid=%llu"
#endif
            "\n", argv[0], qnum, npkts, nbytes, nrecv_calls, nverdict_msgs, nenobufs, ntrunc
#ifdef STATEFUL
            , nnew, nest, ndrop, nfull, ninvalid
#endif
            );
    mnl_socket_close(nl);
    return 0;
}
