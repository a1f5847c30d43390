#!/usr/bin/python3
"""One end of the scripted SCTP associations of test/e2e/kernel-diff-sctp.test.ts.

    sctp_peer.py ROLE        (ROLE: cli or srv; run in that namespace of the lab)

The kernel here has no SCTP sockets, so both ends are scripted: every packet is built with
scapy's SCTP layers from the table STEPS below (the same table in both ends), so the receiving
end can name each packet it sees by its SCTP bytes, which the gateway does not change.

stdin, one command a line:
    send STEP    send STEP's packet (a step of this role)
    mark N       send the datagram "MARK N" to the other end's UDP port 9999
    mark6 N      the same over IPv6 (after an IPv6 step)
stdout:
    READY        the sniffer runs and UDP 9999 is bound
    RX NAMES     an SCTP packet arrived: the comma-separated names of the steps with its bytes
                 (several when steps send the same bytes), or "?" and its hex
    MARK N       the datagram N arrived: everything the other end sent before it has arrived

Packets go out through the kernel's raw sockets (IPPROTO_RAW: the bytes as built, the kernel
routes them and resolves the neighbour, where scapy's own ARP would fall back to a broadcast
frame after a 2 s wait, which a gateway does not forward). Packets and marks are reported by
one sniffer, in the order they arrived. The test runs both
ends on one CPU (taskset), so that a packet and the mark sent after it cross the gateway in
that order.
"""
import socket
import sys
import threading

from scapy.all import IP, SCTP, AsyncSniffer, IPv6, Raw, conf, raw
from scapy.layers.sctp import (SCTPChunkAbort, SCTPChunkCookieAck, SCTPChunkCookieEcho, SCTPChunkData,
                               SCTPChunkHeartbeatAck, SCTPChunkHeartbeatReq, SCTPChunkInit, SCTPChunkInitAck,
                               SCTPChunkParamHeartbeatInfo, SCTPChunkSACK, SCTPChunkShutdown, SCTPChunkShutdownAck,
                               SCTPChunkShutdownComplete)

conf.verb = 0
ADDR = {'cli': '198.18.1.1', 'srv': '198.19.2.1'}
ADDR6 = {'cli': '2001:2:0:1::1', 'srv': '2001:2:0:2::1'}
IFACE = {'cli': 'c0', 'srv': 's0'}
MARK_PORT = 9999

# association A: the full life of an association; B: started by a HEARTBEAT; C: out of the blue;
# D: over IPv6
TC, TS = 0x0C0C0C0C, 0x05050505
TC2, TS2 = 0x0D0D0D0D, 0x06060606


def c2s(sport, vtag, *chunks, dport=5000, chksum=None):
    s = SCTP(sport=sport, dport=dport, tag=vtag) if chksum is None else SCTP(sport=sport, dport=dport, tag=vtag, chksum=chksum)
    p = IP(src=ADDR['cli'], dst=ADDR['srv']) / s
    for c in chunks:
        p = p / c
    return ('cli', p)


def s2c(dport, vtag, *chunks, sport=5000):
    p = IP(src=ADDR['srv'], dst=ADDR['cli']) / SCTP(sport=sport, dport=dport, tag=vtag)
    for c in chunks:
        p = p / c
    return ('srv', p)


def c2s6(sport, vtag, *chunks):
    p = IPv6(src=ADDR6['cli'], dst=ADDR6['srv']) / SCTP(sport=sport, dport=5000, tag=vtag)
    for c in chunks:
        p = p / c
    return ('cli', p)


def s2c6(dport, vtag, *chunks):
    p = IPv6(src=ADDR6['srv'], dst=ADDR6['cli']) / SCTP(sport=5000, dport=dport, tag=vtag)
    for c in chunks:
        p = p / c
    return ('srv', p)


def init(tag, tsn=1):
    return SCTPChunkInit(init_tag=tag, a_rwnd=65536, n_out_streams=10, n_in_streams=10, init_tsn=tsn)


def init_ack(tag, tsn=1):
    return SCTPChunkInitAck(init_tag=tag, a_rwnd=65536, n_out_streams=10, n_in_streams=10, init_tsn=tsn)


def data(tsn, text):
    return SCTPChunkData(tsn=tsn, stream_id=0, stream_seq=tsn, proto_id=0, beginning=1, ending=1, data=text)


def hb(info):
    return SCTPChunkHeartbeatReq(params=[SCTPChunkParamHeartbeatInfo(data=info)])


def hb_ack(info):
    return SCTPChunkHeartbeatAck(params=[SCTPChunkParamHeartbeatInfo(data=info)])


STEPS = {
    # a NEW association from outside: refused by the policy
    'srv_init_from_outside': s2c(40009, 0, init(0x0E0E0E0E), sport=6000),
    # DATA without an association: no entry can start with it (INVALID)
    'a_data_before_init': c2s(40001, TS, data(1, b'early')),
    'a_init': c2s(40001, 0, init(TC)),
    'a_init_retransmit': c2s(40001, 0, init(TC)),
    'a_init_ack': s2c(40001, TC, init_ack(TS)),
    'a_cookie_echo': c2s(40001, TS, SCTPChunkCookieEcho(cookie=b'cookie-of-a')),
    'a_cookie_ack': s2c(40001, TC, SCTPChunkCookieAck()),
    'a_data': c2s(40001, TS, data(1, b'hello')),
    'a_sack': s2c(40001, TC, SCTPChunkSACK(cumul_tsn_ack=1, a_rwnd=65536)),
    'a_data_and_sack_bundled': s2c(40001, TC, data(1, b'reply'), SCTPChunkSACK(cumul_tsn_ack=2, a_rwnd=65536)),
    # wrong verification tag (the client's own tag in its packet): INVALID
    'a_data_wrong_vtag': c2s(40001, TC, data(2, b'wrong tag')),
    'srv_data_wrong_vtag': s2c(40001, 0xDEADBEEF, data(2, b'wrong tag')),
    # a bad CRC32c: INVALID (nf_conntrack_checksum)
    'a_data_bad_crc': c2s(40001, TS, data(2, b'bad crc'), chksum=0x12345678),
    # COOKIE_ECHO bundled after DATA: COOKIE_ECHO must be the first chunk (INVALID)
    'a_cookie_echo_not_first': c2s(40001, TS, data(2, b'x'), SCTPChunkCookieEcho(cookie=b'c')),
    'a_heartbeat': c2s(40001, TS, hb(b'hb-a-1')),
    'a_heartbeat_ack': s2c(40001, TC, hb_ack(b'hb-a-1')),
    'a_shutdown': c2s(40001, TS, SCTPChunkShutdown(cumul_tsn_ack=1)),
    'a_shutdown_ack': s2c(40001, TC, SCTPChunkShutdownAck()),
    'a_shutdown_complete': c2s(40001, TS, SCTPChunkShutdownComplete()),
    # DATA with the right tag on the CLOSED entry: the state stays, the packet is ESTABLISHED
    'a_data_after_close': c2s(40001, TS, data(3, b'late')),
    # B: an association this gateway never saw set up, picked up by its HEARTBEAT
    'b_heartbeat': c2s(40002, TS2, hb(b'hb-b-1')),
    # an INIT from the server side while only the HEARTBEAT was seen: out of state (INVALID)
    'b_srv_init_out_of_state': s2c(40002, 0, init(TC2)),
    'b_heartbeat_ack': s2c(40002, TC2, hb_ack(b'hb-b-1')),
    'b_data': c2s(40002, TS2, data(7, b'picked up')),
    # ABORT with the T flag carries the peer's tag (vtag[ORIGINAL] for the server)
    'b_abort_wrong_tag': s2c(40002, TC2, SCTPChunkAbort(TCB=1)),
    'b_abort_t': s2c(40002, TS2, SCTPChunkAbort(TCB=1)),
    # out of the blue: a COOKIE_ACK and an ABORT cannot start an entry (INVALID)
    'c_cookie_ack_ootb': c2s(40003, TS, SCTPChunkCookieAck()),
    'c_abort_ootb': c2s(40004, TS, SCTPChunkAbort()),
    # an INIT with a non-zero tag (Sec 8.5.1 A): INVALID
    'c_init_nonzero_vtag': c2s(40005, 0x1234, init(TC)),
    'd_init': c2s6(40011, 0, init(TC)),
    'd_init_ack': s2c6(40011, TC, init_ack(TS)),
    'd_cookie_echo': c2s6(40011, TS, SCTPChunkCookieEcho(cookie=b'cookie-of-d')),
    'd_cookie_ack': s2c6(40011, TC, SCTPChunkCookieAck()),
    'd_data': c2s6(40011, TS, data(1, b'over ipv6')),
    'd_data_wrong_vtag': s2c6(40011, TS, data(1, b'wrong tag')),
    # ABORT without the T flag carries the sender's own tag
    'd_abort': s2c6(40011, TC, SCTPChunkAbort()),
}

# the SCTP bytes of each step, as the other end will see them
BY_BYTES = {}
for name, (_role, pkt) in STEPS.items():
    BY_BYTES.setdefault(raw(pkt)[40 if IPv6 in pkt else 20:], []).append(name)


def main():
    role = sys.argv[1]
    other = 'srv' if role == 'cli' else 'cli'
    out_lock = threading.Lock()

    def say(line):
        with out_lock:
            sys.stdout.write(line + '\n')
            sys.stdout.flush()

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((ADDR[role], MARK_PORT))
    sink6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sink6.bind((ADDR6[role], MARK_PORT))
    raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def seen(p):
        if IP in p:
            l3, me = p[IP], ADDR[role]
            proto = l3.proto
        elif IPv6 in p:
            l3, me = p[IPv6], ADDR6[role]
            proto = l3.nh
        else:
            return
        if l3.dst != me:
            return
        if proto == 132:
            b = raw(l3.payload)
            names = BY_BYTES.get(b)
            say('RX ' + (','.join(names) if names else '? ' + b.hex()))
        elif p.haslayer(Raw) and p[Raw].load.startswith(b'MARK '):
            say(p[Raw].load.decode())

    ready = threading.Event()
    sn = AsyncSniffer(iface=IFACE[role],
                      filter=f'(dst host {ADDR[role]} or dst host {ADDR6[role]}) and (ip proto 132 or ip6 proto 132 or udp dst port {MARK_PORT})',
                      prn=seen, store=False, started_callback=ready.set)
    sn.start()
    if not ready.wait(10):
        sys.stderr.write('sctp_peer: sniffer did not start\n')
        sys.exit(3)
    say('READY')
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == 'send':
            r, pkt = STEPS[words[1]]
            if r != role:
                sys.stderr.write(f'sctp_peer: {words[1]} is sent by {r}\n')
                sys.exit(2)
            if IPv6 in pkt:
                raw6.sendto(raw(pkt), (pkt[IPv6].dst, 0, 0, 0))
            else:
                raw4.sendto(raw(pkt), (pkt[IP].dst, 0))
        elif words[0] == 'mark':
            sink.sendto(('MARK ' + words[1]).encode(), (ADDR[other], MARK_PORT))
        elif words[0] == 'mark6':
            sink6.sendto(('MARK ' + words[1]).encode(), (ADDR6[other], MARK_PORT))
    sn.stop()


main()
