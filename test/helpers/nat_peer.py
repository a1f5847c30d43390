"""NAT differential peers (test/e2e/kernel-diff-nat.test.ts).

serve ADDR4 ADDR6 TCPPORT UDPPORT: answers every TCP connection (IPv4 and IPv6) and every UDP
datagram with the address and port it came from ("ADDR PORT"), so the far side of a NAT
gateway tells what it saw. Prints "ready" once listening.

tcp HOST PORT [SRC [SPORT]]: connects (from SRC:SPORT when given) and prints what the peer saw,
or "failed: ..." on error.

udp HOST PORT N [WAIT]: N sockets each send one datagram at once; prints one line per socket:
what the peer saw, or "none" when no answer came within WAIT seconds (default 2). Then the
first socket sends again and a last line says what the peer saw then (existing flows unharmed).
"""
import socket
import sys
import threading


def serve(a4, a6, tport, uport):
    def tcp(fam, addr):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, tport))
        s.listen(128)
        while True:
            c, a = s.accept()
            try:
                c.sendall(("%s %d\n" % (a[0], a[1])).encode())
            finally:
                c.close()

    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a4, uport))
        while True:
            d, a = s.recvfrom(2048)
            s.sendto(("%s %d" % (a[0], a[1])).encode(), a)

    ts = [threading.Thread(target=tcp, args=(socket.AF_INET, a4), daemon=True), threading.Thread(target=udp, daemon=True)]
    if a6 != "-":
        ts.append(threading.Thread(target=tcp, args=(socket.AF_INET6, a6), daemon=True))
    for t in ts:
        t.start()
    print("ready", flush=True)
    for t in ts:
        t.join()


def tcp_client(host, port, src=None, sport=0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        if src is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((src, int(sport)))
        s.connect((host, int(port)))
        data = b""
        while not data.endswith(b"\n"):
            b = s.recv(100)
            if not b:
                break
            data += b
        print(data.decode().strip())
    except OSError as e:
        print("failed: %s" % e)


def udp_client(host, port, n, wait=2.0):
    socks = []
    for _ in range(int(n)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        socks.append(s)
    for s in socks:
        s.sendto(b"q", (host, int(port)))
    for s in socks:
        s.settimeout(float(wait))
        try:
            print(s.recv(100).decode())
        except socket.timeout:
            print("none")
    socks[0].sendto(b"again", (host, int(port)))
    try:
        print(socks[0].recv(100).decode())
    except socket.timeout:
        print("none")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "tcp":
        tcp_client(*sys.argv[2:])
    elif cmd == "udp":
        udp_client(*sys.argv[2:])
