#!/usr/bin/python3
"""txcsum_off.py IFNAME: turns TX checksum offload off (ethtool -K IFNAME tx off) through the
legacy SIOCETHTOOL ioctl (ETHTOOL_STXCSUM), for images without the ethtool binary."""
import array, fcntl, socket, struct, sys

SIOCETHTOOL, ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM = 0x8946, 0x16, 0x17
ifname = sys.argv[1].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def call(cmd, data=0):
    buf = array.array('B', struct.pack('II', cmd, data))
    addr, _ = buf.buffer_info()
    fcntl.ioctl(s.fileno(), SIOCETHTOOL, struct.pack('16sP', ifname, addr))
    return struct.unpack('II', buf.tobytes())[1]


call(ETHTOOL_STXCSUM, 0)
if call(ETHTOOL_GTXCSUM) != 0:
    sys.exit('tx checksum offload still on')
