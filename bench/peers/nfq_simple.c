/* Copied from the team's shared NFQUEUE benchmark harness (/work/shared/bench/src/nfq_simple.c), unchanged
 * below this comment. Built by bench/run.ts (make -C bench/peers) into bench/build/. */
/* nfq_simple: the textbook libnetfilter_queue consumer, accept-all.
 * One recv() per packet, one nfq_set_verdict() per packet.
 * Copy mode NFQNL_COPY_PACKET 0xffff, NFQA_CFG_F_GSO, 8 MiB rcvbuf,
 * ENOBUFS ignored (counted).  Usage: nfq_simple [-q QUEUE] [-m MAXLEN]
 * Prints one stats line on stderr at SIGTERM/SIGINT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netfilter.h>
#include <libnfnetlink/libnfnetlink.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

static volatile sig_atomic_t stop;
static unsigned long long npkts, nbytes, nenobufs, nverr;

static void on_sig(int s) { (void)s; stop = 1; }

static int cb(struct nfq_q_handle *qh, struct nfgenmsg *nfmsg,
              struct nfq_data *nfa, void *data) {
    (void)nfmsg; (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    uint32_t id = ph ? ntohl(ph->packet_id) : 0;
    unsigned char *payload;
    int len = nfq_get_payload(nfa, &payload);
    npkts++;
    if (len > 0) nbytes += (unsigned)len;
    if (nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL) < 0) nverr++;
    return 0;
}

int main(int argc, char **argv) {
    int qnum = 0, maxlen = 0, c;
    while ((c = getopt(argc, argv, "q:m:")) != -1) {
        if (c == 'q') qnum = atoi(optarg);
        else if (c == 'm') maxlen = atoi(optarg);
        else { fprintf(stderr, "usage: %s [-q queue] [-m maxlen]\n", argv[0]); return 2; }
    }
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_sig; /* no SA_RESTART */
    sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);

    struct nfq_handle *h = nfq_open();
    if (!h) { perror("nfq_open"); return 1; }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)qnum, &cb, NULL);
    if (!qh) { perror("nfq_create_queue"); return 1; }
    if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 0xffff) < 0) { perror("nfq_set_mode"); return 1; }
    if (nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0) perror("nfq_set_queue_flags(GSO)");
    if (maxlen > 0 && nfq_set_queue_maxlen(qh, (uint32_t)maxlen) < 0) perror("nfq_set_queue_maxlen");
    nfnl_rcvbufsiz(nfq_nfnlh(h), 8u << 20);
    int fd = nfq_fd(h);
    static char buf[0x10000 + 4096] __attribute__((aligned(16)));
    fprintf(stderr, "nfq_simple: bound queue %d\n", qnum);
    while (!stop) {
        ssize_t rv = recv(fd, buf, sizeof buf, 0);
        if (rv >= 0) { nfq_handle_packet(h, buf, (int)rv); continue; }
        if (errno == ENOBUFS) { nenobufs++; continue; }
        if (errno == EINTR) continue;
        perror("recv");
        break;
    }
    fprintf(stderr, "nfq_simple: queue=%d packets=%llu bytes=%llu enobufs=%llu verdict_errors=%llu\n",
            qnum, npkts, nbytes, nenobufs, nverr);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
