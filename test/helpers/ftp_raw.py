#!/usr/bin/python3
"""Raw FTP control-connection client for the FTP e2e tests (runs in the cli namespace).

    ftp_raw.py port SERVER ADDR     log in anonymously, send PORT for ADDR:25700 (a bounce when
                                    ADDR is not the client's own address), print the reply
    ftp_raw.py pasv SERVER N        open N control connections at once, each logs in and sends
                                    PASV; prints the replies, then holds the connections until
                                    stdin closes
"""
import socket
import sys


def reply(f):
    line = f.readline()
    code = line[:3]
    while len(line) >= 4 and line[3] == '-':  # multi-line reply
        line = f.readline()
        if line[:3] == code and line[3:4] == ' ':
            break
    return line.strip()


def login(server):
    fam = socket.AF_INET6 if ':' in server else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((server, 21))
    f = s.makefile('r', encoding='latin-1', newline='\r\n')
    reply(f)
    for cmd in ('USER anonymous', 'PASS nfqwall@'):
        s.sendall((cmd + '\r\n').encode())
        reply(f)
    return s, f


mode, server = sys.argv[1], sys.argv[2]
if mode == 'port':
    s, f = login(server)
    a = sys.argv[3].replace('.', ',')
    s.sendall(('PORT %s,100,100\r\n' % a).encode())
    print(reply(f), flush=True)
    sys.stdin.readline()
elif mode == 'pasv':
    conns = [login(server) for _ in range(int(sys.argv[3]))]
    for s, f in conns:
        s.sendall(b'PASV\r\n')
    for s, f in conns:
        s.settimeout(4)  # a dropped PASV reply (expectation table full) is retransmitted; do not hang
        try:
            print(reply(f), flush=True)
        except (socket.timeout, OSError):
            print('NO REPLY', flush=True)
    print('HOLD', flush=True)
    sys.stdin.readline()
