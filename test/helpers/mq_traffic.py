#!/usr/bin/env python3
"""Traffic for the multi-queue e2e test (test/e2e/multiqueue.test.ts).

  mq_traffic.py serve ADDR4 ADDR6 PORT      TCP and UDP echo servers on both addresses
  mq_traffic.py run PORT SIZE DST4 DST6 SRC...
      one TCP flow (SIZE bytes, echoed back, compared) and one UDP flow (8 datagrams,
      each echoed) from every SRC address (IPv4 ones to DST4, IPv6 ones to DST6), all at
      once; prints one JSON line per flow: {"src", "sport", "proto", "ok", "err"}.
"""
import json, os, socket, sys, threading


def tcp_echo(fam, addr, port):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(256)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo_conn, args=(c,), daemon=True).start()


def echo_conn(c):
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)
    finally:
        c.close()


def udp_echo(fam, addr, port):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        b, peer = s.recvfrom(65536)
        s.sendto(b, peer)


def serve(a4, a6, port):
    ts = [
        threading.Thread(target=tcp_echo, args=(socket.AF_INET, a4, port), daemon=True),
        threading.Thread(target=tcp_echo, args=(socket.AF_INET6, a6, port), daemon=True),
        threading.Thread(target=udp_echo, args=(socket.AF_INET, a4, port), daemon=True),
        threading.Thread(target=udp_echo, args=(socket.AF_INET6, a6, port), daemon=True),
    ]
    for t in ts:
        t.start()
    print('listening', flush=True)
    for t in ts:
        t.join()


out_lock = threading.Lock()


def report(**kw):
    with out_lock:
        print(json.dumps(kw), flush=True)


def tcp_flow(src, dst, port, size):
    fam = socket.AF_INET6 if ':' in src else socket.AF_INET
    data = os.urandom(size)
    sport = 0
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(20)
        s.bind((src, 0))
        sport = s.getsockname()[1]
        s.connect((dst, port))
        got = bytearray()

        def reader():
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got.extend(b)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join(30)
        s.close()
        report(src=src, sport=sport, proto='tcp', ok=bytes(got) == data, err='' if bytes(got) == data else f'got {len(got)} of {size} bytes')
    except Exception as e:  # noqa: BLE001
        report(src=src, sport=sport, proto='tcp', ok=False, err=str(e))


def udp_flow(src, dst, port):
    fam = socket.AF_INET6 if ':' in src else socket.AF_INET
    sport = 0
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((src, 0))
        sport = s.getsockname()[1]
        s.settimeout(1)
        ok = 0
        for i in range(8):
            msg = f'{src} {i}'.encode()
            for _ in range(5):  # a datagram may be lost; the flow must still work
                s.sendto(msg, (dst, port))
                try:
                    b, _ = s.recvfrom(65536)
                    if b == msg:
                        ok += 1
                        break
                except socket.timeout:
                    continue
        report(src=src, sport=sport, proto='udp', ok=ok == 8, err='' if ok == 8 else f'{ok} of 8 echoed')
    except Exception as e:  # noqa: BLE001
        report(src=src, sport=sport, proto='udp', ok=False, err=str(e))


def run(port, size, d4, d6, srcs):
    ts = []
    for src in srcs:
        dst = d6 if ':' in src else d4
        ts.append(threading.Thread(target=tcp_flow, args=(src, dst, port, size)))
        ts.append(threading.Thread(target=udp_flow, args=(src, dst, port)))
    for t in ts:
        t.start()
    for t in ts:
        t.join()


if __name__ == '__main__':
    if sys.argv[1] == 'serve':
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        run(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:])
