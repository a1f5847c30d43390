#!/usr/bin/python3
"""Crafted traffic for the kernel differential tests, sent from the lab's cli namespace.

    ct_scenarios.py SCENARIO

The server side is the srv namespace's real stack: a TCP sink on 8080 (v4 and v6), port 8081
closed (RST), port 8082 silently dropped by srv's INPUT chain, a UDP echo server on 5353, no
UDP socket on 5399. The cli kernel's own RSTs are dropped by an OUTPUT rule in cli (scapy sends
through AF_PACKET, so its packets are not affected). Exits non-zero when an expected answer
does not arrive (each wait has its own timeout, only to fail a hung run).
"""
import socket
import sys
import threading
import time

from scapy.all import ICMP, IP, IPv6, TCP, UDP, AsyncSniffer, Raw, conf, send

conf.verb = 0
SRV4, CLI4 = '198.19.2.1', '198.18.1.1'
SRV6, CLI6 = '2001:2:0:2::1', '2001:2:0:1::1'


def fail(msg):
    sys.stderr.write('ct_scenarios: ' + msg + '\n')
    sys.exit(3)


class Conn:
    """A scripted TCP client; the peer is the real server stack."""

    def __init__(self, sport, dport=8080, v6=False, isn=1000):
        self.v6, self.sport, self.dport = v6, sport, dport
        self.dst = SRV6 if v6 else SRV4
        self.seq, self.ack = isn, 0
        self.got, self.idx = [], 0
        ready = threading.Event()
        self.sn = AsyncSniffer(iface='c0', filter=f'tcp and src port {dport} and dst port {sport}',
                               prn=self.got.append, store=False, started_callback=ready.set)
        self.sn.start()
        if not ready.wait(5):
            fail('sniffer did not start')

    def close_sniffer(self):
        self.sn.stop()

    def ip(self):
        return IPv6(dst=self.dst) if self.v6 else IP(dst=self.dst)

    def send(self, flags, data=b'', seq=None, ack=None):
        p = self.ip() / TCP(sport=self.sport, dport=self.dport, flags=flags,
                            seq=self.seq if seq is None else seq,
                            ack=(self.ack if 'A' in flags else 0) if ack is None else ack, window=64240)
        if data:
            p = p / Raw(data)
        send(p)

    def expect(self, what, pred, timeout=3.0):
        end = time.time() + timeout
        while time.time() < end:
            while self.idx < len(self.got):
                t = self.got[self.idx][TCP]
                self.idx += 1
                if pred(t):
                    return t
            time.sleep(0.005)
        fail(f'no {what} from {self.dst}:{self.dport} to port {self.sport}')

    def connect(self):
        self.send('S')
        sa = self.expect('SYN/ACK', lambda t: t.flags.S and t.flags.A)
        self.seq += 1
        self.ack = sa.seq + 1
        self.send('A')

    def data(self, payload):
        self.send('PA', payload)
        self.seq += len(payload)
        want = self.seq
        self.expect('ACK of data', lambda t: t.ack == want)

    def fin_close(self):
        self.send('FA')
        self.seq += 1
        f = self.expect('FIN', lambda t: t.flags.F)
        self.ack = f.seq + len(f.payload) + 1
        self.send('A')

    def rst(self):
        self.send('R', ack=0)


def tcp_fin(v6=False):
    c = Conn(40001, v6=v6)
    c.connect()
    for i in range(3):
        c.data(b'hello %d\n' % i)
    c.fin_close()
    c.close_sniffer()


def scenarios():
    def tcp_rst():
        c = Conn(40002)
        c.connect()
        c.data(b'some data\n')
        c.rst()

    def tcp_closed_port():
        c = Conn(40003, dport=8081)
        c.send('S')
        c.expect('RST', lambda t: t.flags.R)

    def tcp_syn_unanswered():
        c = Conn(40004, dport=8082)
        for _ in range(3):
            c.send('S')
            time.sleep(0.1)

    def tcp_bad_flags():
        for port, flags in ((40005, ''), (40006, 'FPU'), (40007, 'SF')):
            Conn(port).send(flags)
        # the same combinations inside an established connection
        c = Conn(40008)
        c.connect()
        for flags in ('', 'FPU', 'SF'):
            c.send(flags, ack=0)
        c.data(b'after\n')
        c.fin_close()

    def tcp_out_of_window():
        c = Conn(40009)
        c.connect()
        c.data(b'first\n')
        c.send('PA', b'far ahead\n', seq=(c.seq + 50_000_000) % 2**32)
        c.send('PA', b'far behind\n', seq=(c.seq - 50_000_000) % 2**32)
        c.data(b'second\n')
        c.fin_close()

    def tcp_ack_unseen():
        c = Conn(40010)
        c.connect()
        c.data(b'first\n')
        c.send('A', ack=c.ack + 100_000)
        c.send('PA', b'x\n', ack=c.ack + 100_000)  # the server drops it (acks unsent data)
        c.data(b'second\n')
        c.fin_close()

    def tcp_timewait_reopen():
        c = Conn(40011)
        c.connect()
        c.data(b'first connection\n')
        c.fin_close()
        c.close_sniffer()
        time.sleep(0.2)
        d = Conn(40011, isn=c.seq + 1_000_000)
        d.connect()
        d.data(b'second connection\n')

    def tcp_midstream():
        # phase 1 before the capture (and before the kernel table is flushed), phase 2 after
        c = Conn(40012)
        c.connect()
        c.data(b'before\n')
        print('PHASE1', flush=True)
        sys.stdin.readline()
        c.data(b'after 1\n')
        c.data(b'after 2\n')
        c.fin_close()

    def tcp6():
        tcp_fin(v6=True)

    def udp_reqresp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.bind((CLI4, 41001))
        s.sendto(b'query', (SRV4, 5353))
        s.recvfrom(2048)

    def udp_stream():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.bind((CLI4, 41002))
        start = time.time()
        while time.time() - start < 2.6:  # a flow lasting more than 2 s
            s.sendto(b'stream', (SRV4, 5353))
            s.recvfrom(2048)
            time.sleep(0.25)

    def icmp_port_unreach():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((CLI4, 41003))
        s.connect((SRV4, 5399))
        s.send(b'nobody listens')
        s.settimeout(3)
        try:
            s.recv(100)
            fail('expected ECONNREFUSED')
        except ConnectionRefusedError:
            pass

    def icmp_unsolicited_reply():
        send(IP(dst=SRV4) / ICMP(type=0, id=777, seq=1) / Raw(b'x' * 16))

    def icmp_unknown_error():
        inner = IP(src=SRV4, dst=CLI4) / UDP(sport=5555, dport=6666) / Raw(b'abcd')
        send(IP(dst=SRV4) / ICMP(type=3, code=3) / inner)
        inner6 = IPv6(src=SRV6, dst=CLI6) / UDP(sport=5555, dport=6666) / Raw(b'abcd')
        from scapy.all import ICMPv6DestUnreach
        send(IPv6(dst=SRV6) / ICMPv6DestUnreach(code=4) / inner6)

    def ipv6_no_next_header():
        # next header 59 directly and after a destination-options header: ipv6_skip_exthdr
        # fails on 59, so the kernel finds no layer-4 protocol (INVALID, no entry)
        from scapy.all import IPv6ExtHdrDestOpt
        send(IPv6(dst=SRV6, nh=59) / Raw(b'\0' * 8))
        send(IPv6(dst=SRV6) / IPv6ExtHdrDestOpt(nh=59) / Raw(b'\0' * 8))

    return {k: v for k, v in locals().items() if callable(v)}


if __name__ == '__main__':
    table = dict(scenarios(), tcp_fin=tcp_fin)
    name = sys.argv[1]
    if name not in table:
        fail('unknown scenario ' + name)
    table[name]()
    print('DONE', flush=True)
    # AsyncSniffer threads: leave without waiting for them
    sys.stdout.flush()
    import os
    os._exit(0)
