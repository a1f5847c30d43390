/* Copied from the team's shared NFQUEUE benchmark harness (/work/shared/bench/src/rr.c), unchanged
 * below this comment. Built by bench/run.ts (make -C bench/peers) into bench/build/. */
/* rr: TCP request/response load tool for the benchmark harness.
 *   rr server PORT [REQ] [RESP]                 epoll server: answers every REQ bytes with RESP bytes
 *   rr crr  HOST PORT SECONDS [CONC] [REQ] [RESP]   connect/request/response/close loop, CONC in flight
 *   rr lat  HOST PORT COUNT [WARMUP] [SIZE]     ping-pong on one TCP_NODELAY connection
 *   rr udp  HOST PORT SECONDS [FLOWS] [PAYLOAD] [PPS]  UDP blaster, FLOWS source ports (0 PPS = max)
 * Client modes print one JSON object on stdout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }
static char junk[65536];

#define MAXFD 65536
static int srv_got[MAXFD];

static int server(int port, int req, int resp) {
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = INADDR_ANY };
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) { perror("bind/listen"); return 1; }
    nonblock(ls);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (;;) {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) break;
                    if (c >= MAXFD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    srv_got[c] = 0;
                    struct epoll_event e2 = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e2);
                }
                continue;
            }
            for (;;) {
                ssize_t r = read(fd, junk, sizeof junk);
                if (r > 0) {
                    srv_got[fd] += (int)r;
                    while (srv_got[fd] >= req) { srv_got[fd] -= req; if (write(fd, junk, (size_t)resp) < 0) break; }
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                close(fd); /* EOF or error; close() removes it from epoll */
                break;
            }
        }
    }
}

struct slot { int fd; int state; int got; double t0; };
enum { S_CONNECTING = 1, S_WAITING = 2 };

static int crr(const char *host, int port, double secs, int conc, int req, int resp) {
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    int ep = epoll_create1(0);
    struct slot *s = calloc((size_t)conc, sizeof *s);
    unsigned long long ok = 0, fail_connect = 0, fail_reset = 0, fail_timeout = 0, fail_other = 0;
    double lat_sum = 0;
    double t_end = now() + secs, t_start = now();
    const double timeout = 1.0;
    int one = 1;
#define START(i) do { \
        s[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0); \
        setsockopt(s[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); \
        s[i].state = S_CONNECTING; s[i].got = 0; s[i].t0 = now(); \
        int r_ = connect(s[i].fd, (struct sockaddr *)&a, sizeof a); \
        if (r_ < 0 && errno != EINPROGRESS) { fail_connect++; close(s[i].fd); s[i].fd = -1; s[i].state = 0; } \
        else { struct epoll_event e_ = { .events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)(i) }; epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &e_); } \
    } while (0)
    for (int i = 0; i < conc; i++) START(i);
    struct epoll_event evs[512];
    double last_sweep = now();
    while (now() < t_end) {
        int n = epoll_wait(ep, evs, 512, 50);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            if (s[i].state == 0) continue;
            int fd = s[i].fd, done = 0, err = 0;
            if (s[i].state == S_CONNECTING) {
                int e = 0; socklen_t el = sizeof e;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e) { err = 1; if (e == ECONNRESET || e == ECONNREFUSED) fail_reset++; else fail_connect++; }
                else if (evs[k].events & EPOLLOUT) {
                    if (write(fd, junk, (size_t)req) != req) { err = 1; fail_other++; }
                    else {
                        s[i].state = S_WAITING;
                        struct epoll_event e2 = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
                        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e2);
                    }
                }
            } else {
                for (;;) {
                    ssize_t r = read(fd, junk, sizeof junk);
                    if (r > 0) { s[i].got += (int)r; if (s[i].got >= resp) { done = 1; break; } continue; }
                    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                    err = 1; if (r < 0 && errno == ECONNRESET) fail_reset++; else fail_other++;
                    break;
                }
            }
            if (done || err) {
                if (done) { ok++; lat_sum += now() - s[i].t0; }
                close(fd); s[i].fd = -1; s[i].state = 0;
                if (now() < t_end) START(i);
            }
        }
        double t = now();
        if (t - last_sweep > 0.1) {
            last_sweep = t;
            for (int i = 0; i < conc; i++)
                if (s[i].state && t - s[i].t0 > timeout) { fail_timeout++; close(s[i].fd); s[i].fd = -1; s[i].state = 0; START(i); }
        }
    }
    double el = now() - t_start;
    int inflight = 0;
    for (int i = 0; i < conc; i++) if (s[i].state) { inflight++; close(s[i].fd); }
    unsigned long long fails = fail_connect + fail_reset + fail_timeout + fail_other;
    printf("{\"conns\":%llu,\"cps\":%.1f,\"failures\":%llu,\"fail_connect\":%llu,\"fail_reset\":%llu,"
           "\"fail_timeout\":%llu,\"fail_other\":%llu,\"inflight_at_end\":%d,\"mean_conn_us\":%.1f,"
           "\"seconds\":%.3f,\"concurrency\":%d}\n",
           ok, ok / el, fails, fail_connect, fail_reset, fail_timeout, fail_other, inflight,
           ok ? lat_sum / ok * 1e6 : 0.0, el, conc);
    return 0;
}

/* udp blaster: NFLOWS connected UDP sockets (one source port each), sendmmsg() batches of 32 round-robin,
 * blocking sockets (so a full socket send buffer waits instead of failing); optional pacing to PPS. */
static int udp_blast(const char *host, int port, double secs, int nflows, int payload, double pps) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    int *fds = calloc((size_t)nflows, sizeof *fds);
    for (int i = 0; i < nflows; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        int sb = 4 << 20;
        setsockopt(fds[i], SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof sb);
        if (connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    }
    enum { B = 32 };
    struct mmsghdr m[B]; struct iovec iov[B];
    for (int i = 0; i < B; i++) {
        iov[i].iov_base = junk; iov[i].iov_len = (size_t)payload;
        memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long long sent = 0, errs = 0;
    double t0 = now(), t_end = t0 + secs;
    int f = 0;
    while (1) {
        double t = now();
        if (t >= t_end) break;
        if (pps > 0 && sent > (t - t0) * pps) { struct timespec ts = { 0, 20000 }; nanosleep(&ts, NULL); continue; }
        int r = sendmmsg(fds[f], m, B, 0);
        if (r > 0) sent += (unsigned)r; else errs++;
        if (++f == nflows) f = 0;
    }
    double el = now() - t0;
    printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"pps\":%.0f,\"flows\":%d,\"payload\":%d}\n",
           sent, errs, el, sent / el, nflows, payload);
    return 0;
}

static int cmpd(const void *x, const void *y) { double a = *(const double *)x, b = *(const double *)y; return (a > b) - (a < b); }

static int lat(const char *host, int port, int count, int warm, int size) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = { .tv_sec = 2 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);   /* also bounds connect() */
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { printf("{\"error\":\"connect: %s\"}\n", strerror(errno)); return 1; }
    double *rtt = calloc((size_t)count, sizeof *rtt);
    int lost = 0, done = 0;
    for (int i = 0; i < warm + count; i++) {
        double t0 = now();
        if (write(fd, junk, (size_t)size) != size) { lost++; break; }
        int got = 0;
        while (got < size) {
            ssize_t r = read(fd, junk, (size_t)(size - got));
            if (r <= 0) break;
            got += (int)r;
        }
        if (got < size) { lost++; break; }
        if (i >= warm) rtt[done++] = (now() - t0) * 1e6;
    }
    if (!done) { printf("{\"error\":\"no round trips\",\"lost\":%d}\n", lost); return 1; }
    qsort(rtt, (size_t)done, sizeof *rtt, cmpd);
    double sum = 0; for (int i = 0; i < done; i++) sum += rtt[i];
#define PCT(p) rtt[(int)((p) / 100.0 * (done - 1) + 0.5)]
    printf("{\"count\":%d,\"errors\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"min_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,\"size\":%d}\n",
           done, lost, PCT(50), PCT(90), PCT(99), rtt[0], rtt[done - 1], sum / done, size);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "server"))
        return server(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 64, argc > 4 ? atoi(argv[4]) : 64);
    if (argc >= 5 && !strcmp(argv[1], "crr"))
        return crr(argv[2], atoi(argv[3]), atof(argv[4]), argc > 5 ? atoi(argv[5]) : 32,
                   argc > 6 ? atoi(argv[6]) : 64, argc > 7 ? atoi(argv[7]) : 64);
    if (argc >= 5 && !strcmp(argv[1], "lat"))
        return lat(argv[2], atoi(argv[3]), atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 100, argc > 6 ? atoi(argv[6]) : 64);
    if (argc >= 5 && !strcmp(argv[1], "udp"))
        return udp_blast(argv[2], atoi(argv[3]), atof(argv[4]), argc > 5 ? atoi(argv[5]) : 64,
                         argc > 6 ? atoi(argv[6]) : 64, argc > 7 ? atof(argv[7]) : 0);
    fprintf(stderr, "usage: rr server PORT [REQ RESP] | rr crr HOST PORT SECS [CONC REQ RESP] | rr lat HOST PORT COUNT [WARMUP SIZE]\n");
    return 2;
}
