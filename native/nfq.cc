// nfqwall native data path: one NFQUEUE netlink socket per NfqQueue object.
//
// - libmnl for message building/parsing, recvmmsg(MSG_DONTWAIT) for batched receive,
//   NFQNL_MSG_VERDICT_BATCH for runs of equal verdicts, one sendmsg per batch (more only when
//   rewritten payloads go back and would not fit the socket's send buffer).
// - Event-loop integration: uv_poll on the netlink fd (level triggered, no spinning).
// - Zero copy: batch.data is a Uint8Array over the receive slab; the index row of a
//   packet points at its payload inside the slab (layout: src/queue/layout.ts).
// - Context aware: no mutable globals; all state lives in the NfqQueue instance and
//   the per-env addon instance (constructor reference). Safe for one worker per queue.
// - No allocation per packet: slab, iovecs, index, verdict buffers are allocated once.

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

// Mirrors src/queue/layout.ts (checked from TypeScript at load time).
constexpr uint32_t INDEX_STRIDE = 16;
enum : uint32_t {
  IX_ID = 0,
  IX_HOOK = 1,
  IX_FAMILY = 2,
  IX_INDEV = 3,
  IX_OUTDEV = 4,
  IX_MARK = 5,
  IX_OFFSET = 6,
  IX_CAPLEN = 7,
  IX_ORIGLEN = 8,
  IX_FLAGS = 9,
  IX_QUEUE = 10,
  IX_UID = 11,
  IX_GID = 12,
  IX_HWADDR_HI = 13,
  IX_HWADDR_LO = 14,
  IX_ROOM = 15,
};
constexpr uint32_t PKTF_CSUM_NOT_READY = 1u << 0;
constexpr uint32_t PKTF_GSO = 1u << 1;
constexpr uint32_t PKTF_TRUNCATED = 1u << 2;
constexpr uint32_t PKTF_CSUM_VERIFIED = 1u << 3;
constexpr uint32_t PKTF_UID_GID = 1u << 4;
constexpr uint32_t PKTF_HWADDR = 1u << 5;
constexpr uint32_t VERDICT_SET_MARK = 1u << 16;
constexpr uint32_t VERDICT_SET_PAYLOAD = 1u << 17;
constexpr uint32_t VERDICT_MASK = 0xffff;

constexpr int MAX_BATCH = 256;
constexpr int MAX_ROUNDS = 16;         // recvmmsg batches per wake-up before yielding to the loop
constexpr int DRAIN_ROUNDS = 64;       // bound on draining at close()
constexpr uint32_t MIN_PAYLOAD = 20;      // a rewritten packet holds at least an IPv4 header
constexpr uint32_t MAX_PAYLOAD = 0xffff - static_cast<uint32_t>(NLA_HDRLEN);  // nla_len is 16 bits
constexpr size_t VERDICT_MSG_MAX = 64; // bytes of one verdict message incl. mark attr and payload attr header (aligned, generous)

std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* n = strerrorname_np(err);
  if (n) return n;
#endif
  return "E" + std::to_string(err);
}

Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

struct nlmsghdr* NfqPut(char* buf, int type, uint16_t queue, uint16_t flags, uint32_t seq) {
  struct nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<struct nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(struct nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(queue);
  return nlh;
}

// Inline netlink walking for the per-packet path: the libmnl equivalents (mnl_nlmsg_ok/next,
// mnl_attr_ok/next/get_type/get_payload_len/get_payload, mnl_nlmsg_get_payload_tail) are
// out-of-line library calls, about seven per attribute and eight attributes per packet. Same
// checks as libmnl's.
inline bool NlmsgOk(const struct nlmsghdr* h, int len) {
  return len >= static_cast<int>(sizeof(struct nlmsghdr)) && h->nlmsg_len >= sizeof(struct nlmsghdr) &&
         static_cast<int>(h->nlmsg_len) <= len;
}
inline struct nlmsghdr* NlmsgNext(struct nlmsghdr* h, int* len) {
  *len -= static_cast<int>(NLMSG_ALIGN(h->nlmsg_len));
  return reinterpret_cast<struct nlmsghdr*>(reinterpret_cast<char*>(h) + NLMSG_ALIGN(h->nlmsg_len));
}
// Calls f(type, payload, payload length) for each attribute of an nfnetlink message.
template <typename F>
inline void ForEachAttr(const struct nlmsghdr* h, F f) {
  const char* p = reinterpret_cast<const char*>(h) + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  const char* tail = reinterpret_cast<const char*>(h) + NLMSG_ALIGN(h->nlmsg_len);
  while (tail - p >= static_cast<ptrdiff_t>(sizeof(struct nlattr))) {
    const auto* a = reinterpret_cast<const struct nlattr*>(p);
    if (a->nla_len < sizeof(struct nlattr) || a->nla_len > tail - p) break;
    if (!f(static_cast<uint16_t>(a->nla_type & NLA_TYPE_MASK), p + NLA_HDRLEN, static_cast<uint16_t>(a->nla_len - NLA_HDRLEN)))
      break;
    p += NLA_ALIGN(a->nla_len);
  }
}

class NfqQueue : public Napi::ObjectWrap<NfqQueue> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NfqQueue",
                       {
                           InstanceMethod<&NfqQueue::Close>("close"),
                           InstanceMethod<&NfqQueue::Stats>("stats"),
                           InstanceMethod<&NfqQueue::DebugStopPolling>("debugStopPolling"),
                           InstanceAccessor<&NfqQueue::GetData>("data"),
                           InstanceAccessor<&NfqQueue::GetIndex>("index"),
                           InstanceAccessor<&NfqQueue::GetVerdicts>("verdicts"),
                           InstanceAccessor<&NfqQueue::GetMarks>("marks"),
                           InstanceAccessor<&NfqQueue::GetPortid>("portid"),
                           InstanceAccessor<&NfqQueue::GetClosed>("closed"),
                           InstanceAccessor<&NfqQueue::GetBufSize>("bufSize"),
                       });
  }

  // new NfqQueue({queue, copyRange, maxLen, batchSize, rcvbuf, failOpen, gso}, onBatch(count), onError(err))
  NfqQueue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NfqQueue>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsFunction() || !info[2].IsFunction()) {
      Napi::TypeError::New(env, "NfqQueue(options, onBatch, onError)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* k, double def) -> double {
      Napi::Value v = o.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
    };
    auto flag = [&](const char* k, bool def) -> bool {
      Napi::Value v = o.Get(k);
      return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
    };
    double q = num("queue", 0), cr = num("copyRange", 0xffff), ml = num("maxLen", 4096), bs = num("batchSize", 64),
           rb = num("rcvbuf", 8 << 20);
    if (!(q >= 0 && q <= 65535) || !(cr >= 0 && cr <= 0xffff) || !(ml >= 1 && ml <= 0x7fffffff) ||
        !(bs >= 1 && bs <= MAX_BATCH) || !(rb >= 0 && rb <= 0x7fffffff)) {
      Napi::RangeError::New(env, "NfqQueue: option out of range").ThrowAsJavaScriptException();
      return;
    }
    queue_ = static_cast<uint16_t>(q);
    copyRange_ = static_cast<uint32_t>(cr);
    maxLen_ = static_cast<uint32_t>(ml);
    batch_ = static_cast<int>(bs);
    rcvbuf_ = static_cast<int>(rb);
    failOpen_ = flag("failOpen", false);
    gso_ = flag("gso", true);
    errVerdict_ = failOpen_ ? NF_ACCEPT : NF_DROP;

    onBatch_ = Napi::Persistent(info[1].As<Napi::Function>());
    onError_ = Napi::Persistent(info[2].As<Napi::Function>());
    asyncCtx_ = new Napi::AsyncContext(env, "nfqwall.queue");

    // Buffers, allocated once. One receive buffer per recvmmsg slot, sized for the copy range.
    uint32_t range = copyRange_ == 0 ? 0xffff : copyRange_;
    bufSize_ = ((range + 8192) + 63) & ~size_t(63);
    Napi::ArrayBuffer slab = Napi::ArrayBuffer::New(env, bufSize_ * batch_);
    slab_ = static_cast<uint8_t*>(slab.Data());
    data_ = Napi::Persistent(Napi::Uint8Array::New(env, bufSize_ * batch_, slab, 0));
    Napi::ArrayBuffer ib = Napi::ArrayBuffer::New(env, sizeof(uint32_t) * INDEX_STRIDE * batch_);
    index_ = static_cast<uint32_t*>(ib.Data());
    indexArr_ = Napi::Persistent(Napi::Uint32Array::New(env, INDEX_STRIDE * batch_, ib, 0));
    Napi::ArrayBuffer vb = Napi::ArrayBuffer::New(env, sizeof(uint32_t) * batch_);
    verdicts_ = static_cast<uint32_t*>(vb.Data());
    verdictsArr_ = Napi::Persistent(Napi::Uint32Array::New(env, batch_, vb, 0));
    Napi::ArrayBuffer mb = Napi::ArrayBuffer::New(env, sizeof(uint32_t) * batch_);
    marks_ = static_cast<uint32_t*>(mb.Data());
    marksArr_ = Napi::Persistent(Napi::Uint32Array::New(env, batch_, mb, 0));
    memset(index_, 0, sizeof(uint32_t) * INDEX_STRIDE * batch_);
    ids_.assign(batch_, 0);
    vbuf_.assign(batch_ * VERDICT_MSG_MAX + 4096, 0);
    cbuf_.assign(8192, 0);
    msgs_.assign(MAX_BATCH, mmsghdr{});
    outIov_.reserve(3 * static_cast<size_t>(batch_) + 1);
    iov_.assign(MAX_BATCH, iovec{});
    for (int i = 0; i < batch_; i++) {
      iov_[i].iov_base = slab_ + bufSize_ * i;
      iov_[i].iov_len = bufSize_;
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }

    int err = Open();
    if (err != 0) {
      std::string what = openStep_;
      CloseSocket();
      ErrnoError(env, what, err).ThrowAsJavaScriptException();
      return;
    }

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      CloseSocket();
      Napi::Error::New(env, "NfqQueue: no event loop").ThrowAsJavaScriptException();
      return;
    }
    poll_ = new uv_poll_t;
    uv_poll_init(loop, poll_, fd_);
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, &NfqQueue::OnPoll);
    napi_add_env_cleanup_hook(env, &NfqQueue::EnvCleanup, this);
    hookAdded_ = true;
    Ref();  // keep the JS object alive while the queue is open
    refd_ = true;
  }

  ~NfqQueue() override {
    Shutdown();
    delete asyncCtx_;
  }

 private:
  // ---------------------------------------------------------------- set-up
  int Open() {
    openStep_ = "socket(NETLINK_NETFILTER)";
    nl_ = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl_) return errno;
    openStep_ = "bind(netlink)";
    if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) return errno;
    fd_ = mnl_socket_get_fd(nl_);
    portid_ = mnl_socket_get_portid(nl_);
    {
      // netlink_sendmsg refuses a datagram longer than sk_sndbuf - 32 (EMSGSIZE): verdicts that
      // carry a payload go out in datagrams below that; make room for at least a few whole packets.
      int want = 1 << 20, have = 0;
      socklen_t sl = sizeof have;
      if (getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &have, &sl) == 0 && have < want &&
          setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) < 0)
        setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
      sl = sizeof have;
      if (getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &have, &sl) == 0 && have > 64) sendLimit_ = static_cast<size_t>(have) - 64;
    }
    if (rcvbuf_ > 0) {
      if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_) < 0)
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_, sizeof rcvbuf_);
    }
    // NETLINK_NO_ENOBUFS deliberately NOT set: overflow must be visible (counted).

    openStep_ = "bind queue";
    {
      struct nlmsghdr* nlh = NfqPut(cbuf_.data(), NFQNL_MSG_CONFIG, queue_, NLM_F_ACK, ++seq_);
      struct nfqnl_msg_config_cmd cmd = {};
      cmd.command = NFQNL_CFG_CMD_BIND;
      cmd.pf = htons(AF_INET);
      mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof cmd, &cmd);
      int e = Request(nlh);
      if (e) return e;
    }
    bound_ = true;
    openStep_ = "configure queue";
    {
      struct nlmsghdr* nlh = NfqPut(cbuf_.data(), NFQNL_MSG_CONFIG, queue_, NLM_F_ACK, ++seq_);
      struct nfqnl_msg_config_params params = {};
      params.copy_range = htonl(copyRange_);
      params.copy_mode = NFQNL_COPY_PACKET;
      mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof params, &params);
      // UID_GID: the socket owner's fsuid/fsgid of locally generated packets (-m owner)
      uint32_t mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_UID_GID;
      uint32_t flags = (gso_ ? NFQA_CFG_F_GSO : 0) | (failOpen_ ? NFQA_CFG_F_FAIL_OPEN : 0) | NFQA_CFG_F_UID_GID;
      mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
      mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
      mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(maxLen_));
      int e = Request(nlh);
      if (e) return e;
    }
    return 0;
  }

  // Sends one config request with NLM_F_ACK and waits (bounded) for its ack. Packets that
  // arrive before the queue is fully configured are re-injected with NF_REPEAT, so the hook
  // queues them again once the configuration is in force (they are not lost or judged blind).
  int Request(struct nlmsghdr* nlh) {
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return errno;
    uint32_t seq = nlh->nlmsg_seq;
    char* rbuf = reinterpret_cast<char*>(slab_);  // the slab is not in use yet
    for (int tries = 0; tries < 1000; tries++) {
      struct pollfd pfd = {fd_, POLLIN, 0};
      int pr = poll(&pfd, 1, 5000);
      if (pr == 0) return ETIMEDOUT;
      if (pr < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      ssize_t n = recv(fd_, rbuf, bufSize_, 0);
      if (n < 0) {
        if (errno == EINTR || errno == ENOBUFS) continue;
        return errno;
      }
      int len = static_cast<int>(n);
      for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(rbuf); mnl_nlmsg_ok(h, len);
           h = mnl_nlmsg_next(h, &len)) {
        if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == seq) {
          auto* e = static_cast<struct nlmsgerr*>(mnl_nlmsg_get_payload(h));
          return e->error < 0 ? -e->error : 0;
        }
        if (h->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) {
          uint32_t id;
          if (PacketId(h, &id)) {
            stats_.setupRequeued++;
            SendSingle(id, NF_REPEAT);
          }
        }
      }
    }
    return ETIMEDOUT;
  }

  static bool PacketId(struct nlmsghdr* h, uint32_t* id) {
    bool found = false;
    ForEachAttr(h, [&](uint16_t t, const void* p, uint16_t plen) {
      if (t == NFQA_PACKET_HDR && plen >= sizeof(nfqnl_msg_packet_hdr)) {
        *id = ntohl(static_cast<const struct nfqnl_msg_packet_hdr*>(p)->packet_id);
        found = true;
        return false;
      }
      return true;
    });
    return found;
  }

  void SendSingle(uint32_t id, uint32_t verdict) {
    char buf[128];
    struct nlmsghdr* nlh = NfqPut(buf, NFQNL_MSG_VERDICT, queue_, 0, 0);
    struct nfqnl_msg_verdict_hdr vh = {htonl(verdict), htonl(id)};
    mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof vh, &vh);
    SendAll(buf, nlh->nlmsg_len, 1);
  }

  // One datagram from several pieces (verdict headers in vbuf_, payloads in the slab).
  void SendIov(struct iovec* iov, size_t n, uint64_t nmsgs) {
    struct sockaddr_nl snl = {};
    snl.nl_family = AF_NETLINK;
    struct msghdr mh = {};
    mh.msg_name = &snl;
    mh.msg_namelen = sizeof snl;
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    for (int tries = 0; tries < 8; tries++) {
      if (sendmsg(fd_, &mh, 0) >= 0) {
        stats_.sendmsgCalls++;
        stats_.verdictMsgs += nmsgs;
        return;
      }
      if (errno != EINTR && errno != EAGAIN && errno != ENOBUFS && errno != ENOMEM) break;
    }
    stats_.errors++;
    stats_.sendErrors++;
  }

  void SendAll(const char* buf, size_t len, uint64_t nmsgs) {
    struct iovec iov = {const_cast<char*>(buf), len};
    SendIov(&iov, 1, nmsgs);
  }

  // ---------------------------------------------------------------- hot path
  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<NfqQueue*>(h->data);
    if (status < 0) {
      // A pending socket error (ENOBUFS: the kernel could not queue a packet message to us)
      // shows up as POLLERR, on which libuv stops the handle. Read and clear the error, count
      // it, and poll again: overflow is never fatal.
      if (self->closed_) return;
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == ENOBUFS)
        self->stats_.enobufs++;
      else
        self->stats_.errors++;
      uv_poll_start(self->poll_, UV_READABLE, &NfqQueue::OnPoll);
    }
    self->OnReadable();
  }

  // Parses one NFQNL_MSG_PACKET into index row k. Returns false if it has no packet id.
  // regionEnd: slab offset where the bytes this message may use end (its receive slot's end, or
  // the next message of the same datagram): the room a rewritten packet may grow into (IX_ROOM).
  bool ParsePacket(struct nlmsghdr* h, uint32_t k, uint32_t regionEnd) {
    uint32_t* row = index_ + k * INDEX_STRIDE;
    const auto* nfg = reinterpret_cast<const struct nfgenmsg*>(reinterpret_cast<const char*>(h) + NLMSG_HDRLEN);
    bool haveId = false;
    uint32_t id = 0, hook = 0, indev = 0, outdev = 0, mark = 0, off = 0, caplen = 0, origlen = 0, flags = 0, skbInfo = 0;
    uint32_t uid = 0, gid = 0, hwHi = 0, hwLo = 0;
    bool haveCapLen = false;
    const uint8_t* slab = slab_;
    ForEachAttr(h, [&](uint16_t t, const void* p, uint16_t plen) {
      switch (t) {
        case NFQA_PACKET_HDR:
          if (plen >= sizeof(nfqnl_msg_packet_hdr)) {
            auto* ph = static_cast<const struct nfqnl_msg_packet_hdr*>(p);
            id = ntohl(ph->packet_id);
            hook = ph->hook;
            haveId = true;
          }
          break;
        case NFQA_MARK:
          if (plen >= 4) mark = ntohl(*static_cast<const uint32_t*>(p));
          break;
        case NFQA_IFINDEX_INDEV:
          if (plen >= 4) indev = ntohl(*static_cast<const uint32_t*>(p));
          break;
        case NFQA_IFINDEX_OUTDEV:
          if (plen >= 4) outdev = ntohl(*static_cast<const uint32_t*>(p));
          break;
        case NFQA_PAYLOAD:
          off = static_cast<uint32_t>(static_cast<const uint8_t*>(p) - slab);
          caplen = plen;
          break;
        case NFQA_CAP_LEN:
          if (plen >= 4) {
            origlen = ntohl(*static_cast<const uint32_t*>(p));
            haveCapLen = true;
          }
          break;
        case NFQA_UID:
          // nfqnl_put_sk_uidgid: only for a full socket with a file, UID and GID together
          if (plen >= 4) {
            uid = ntohl(*static_cast<const uint32_t*>(p));
            flags |= PKTF_UID_GID;
          }
          break;
        case NFQA_GID:
          if (plen >= 4) gid = ntohl(*static_cast<const uint32_t*>(p));
          break;
        case NFQA_HWADDR:
          // dev_parse_header() of the input device: the Ethernet source address (6 bytes)
          if (plen >= sizeof(nfqnl_msg_packet_hw)) {
            auto* hw = static_cast<const struct nfqnl_msg_packet_hw*>(p);
            if (ntohs(hw->hw_addrlen) == 6) {
              const uint8_t* a = hw->hw_addr;
              hwHi = (uint32_t(a[0]) << 24) | (uint32_t(a[1]) << 16) | (uint32_t(a[2]) << 8) | a[3];
              hwLo = (uint32_t(a[4]) << 8) | a[5];
              flags |= PKTF_HWADDR;
            }
          }
          break;
        case NFQA_SKB_INFO:
          if (plen >= 4) {
            skbInfo = ntohl(*static_cast<const uint32_t*>(p));
            if (skbInfo & NFQA_SKB_CSUMNOTREADY) flags |= PKTF_CSUM_NOT_READY;
            if (skbInfo & NFQA_SKB_GSO) flags |= PKTF_GSO;
          }
          break;
        default:
          break;
      }
      return true;
    });
    if (!haveId) return false;
    // nfqnl_put_packet_info: CSUM_NOTVERIFIED unless skb_csum_unnecessary(), CSUMNOTREADY for
    // CHECKSUM_PARTIAL, and no NFQA_SKB_INFO at all when neither (nor GSO) applies. So neither
    // bit means the kernel or the NIC already verified the L4 checksum.
    if ((skbInfo & (NFQA_SKB_CSUMNOTREADY | NFQA_SKB_CSUM_NOTVERIFIED)) == 0) flags |= PKTF_CSUM_VERIFIED;
    if (!haveCapLen || origlen < caplen) origlen = caplen;
    if (origlen > caplen) {
      flags |= PKTF_TRUNCATED;
      stats_.truncated++;
    }
    row[IX_ID] = id;
    row[IX_HOOK] = hook;
    row[IX_FAMILY] = nfg->nfgen_family;
    row[IX_INDEV] = indev;
    row[IX_OUTDEV] = outdev;
    row[IX_MARK] = mark;
    row[IX_OFFSET] = off;
    row[IX_CAPLEN] = caplen;
    row[IX_ORIGLEN] = origlen;
    row[IX_FLAGS] = flags;
    row[IX_QUEUE] = ntohs(nfg->res_id);
    row[IX_UID] = uid;
    row[IX_GID] = gid;
    row[IX_HWADDR_HI] = hwHi;
    row[IX_HWADDR_LO] = hwLo;
    row[IX_ROOM] = regionEnd > off + caplen ? regionEnd - off : caplen;
    ids_[k] = id;
    return true;
  }

  void OnReadable() {
    for (int round = 0; round < MAX_ROUNDS && !closed_; round++) {
      int n = recvmmsg(fd_, msgs_.data(), static_cast<unsigned>(batch_), MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          stats_.enobufs++;
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        stats_.errors++;
        break;
      }
      stats_.recvCalls++;
      uint32_t count = 0;
      const int pktType = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
      for (int i = 0; i < n; i++) {
        if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
          stats_.errors++;
          stats_.recvTruncated++;
        }
        int len = static_cast<int>(msgs_[i].msg_len);
        const uint32_t slotEnd = static_cast<uint32_t>(bufSize_ * (i + 1));
        for (struct nlmsghdr* h = static_cast<struct nlmsghdr*>(iov_[i].iov_base); NlmsgOk(h, len); h = NlmsgNext(h, &len)) {
          if (h->nlmsg_type == pktType) {
            if (count < static_cast<uint32_t>(batch_)) {
              int rest = len - static_cast<int>(NLMSG_ALIGN(h->nlmsg_len));
              uint32_t regionEnd = rest >= static_cast<int>(sizeof(struct nlmsghdr))
                                       ? static_cast<uint32_t>(reinterpret_cast<uint8_t*>(h) + NLMSG_ALIGN(h->nlmsg_len) - slab_)
                                       : slotEnd;
              if (ParsePacket(h, count, regionEnd)) count++;
            } else {
              // More packets than index rows (several per datagram): never unanswered.
              uint32_t id;
              if (PacketId(h, &id)) {
                stats_.overflow++;
                stats_.packets++;
                SendSingle(id, errVerdict_);
              }
            }
          } else if (h->nlmsg_type == NLMSG_ERROR) {
            auto* e = reinterpret_cast<struct nlmsgerr*>(reinterpret_cast<char*>(h) + NLMSG_HDRLEN);
            if (e->error != 0) {
              stats_.errors++;
              stats_.verdictErrors++;
            }
          }
        }
      }
      if (count > 0) Deliver(count);
      if (n < batch_) break;
    }
    if (closeRequested_ && !closed_) Shutdown();
  }

  void Deliver(uint32_t count) {
    stats_.packets += count;
    stats_.batches++;
    for (uint32_t i = 0; i < count; i++) {
      verdicts_[i] = errVerdict_;
      marks_[i] = 0;
    }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Value err;
    bool threw = false;
    inCallback_ = true;
    {
      napi_value argv[1] = {Napi::Number::New(env, count)};
      napi_value result;
      napi_status st = napi_make_callback(env, *asyncCtx_, Value(), onBatch_.Value(), 1, argv, &result);
      if (st != napi_ok || env.IsExceptionPending()) {
        threw = true;
        if (env.IsExceptionPending()) err = env.GetAndClearPendingException().Value();
      }
    }
    inCallback_ = false;
    SendVerdicts(count);
    if (threw) {
      stats_.handlerErrors++;
      ReportError(err.IsEmpty() ? Napi::Error::New(env, "onBatch failed").Value() : err);
    }
  }

  void ReportError(Napi::Value err) {
    Napi::Env env = Env();
    napi_value argv[1] = {err};
    napi_value result;
    napi_status st = napi_make_callback(env, *asyncCtx_, Value(), onError_.Value(), 1, argv, &result);
    if (st != napi_ok && env.IsExceptionPending()) {
      Napi::Error e2 = env.GetAndClearPendingException();
      napi_fatal_exception(env, e2.Value());
    }
  }

  size_t PutVerdict(size_t len, int type, uint32_t id, uint32_t verdict, bool withMark, uint32_t mark) {
    struct nlmsghdr* nlh = NfqPut(vbuf_.data() + len, type, queue_, 0, 0);
    struct nfqnl_msg_verdict_hdr vh = {htonl(verdict), htonl(id)};
    mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof vh, &vh);
    if (withMark) mnl_attr_put_u32(nlh, NFQA_MARK, htonl(mark));
    return len + NLMSG_ALIGN(nlh->nlmsg_len);
  }

  // A VERDICT for packet k with NFQA_PAYLOAD: the rewritten bytes at the same offset, IX_CAPLEN of
  // them (the handler may have changed it within IX_ROOM: nfqnl_mangle trims or extends), straight
  // from the slab (the header goes to vbuf_ at len, the payload and its padding into outIov_).
  size_t PutPayloadVerdict(size_t len, size_t* seg, uint32_t k, uint32_t verdict, bool withMark, uint32_t mark) {
    static const char zeros[NLA_ALIGNTO] = {};
    const uint32_t* row = index_ + k * INDEX_STRIDE;
    uint32_t plen = row[IX_CAPLEN];
    struct nlmsghdr* nlh = NfqPut(vbuf_.data() + len, NFQNL_MSG_VERDICT, queue_, 0, 0);
    struct nfqnl_msg_verdict_hdr vh = {htonl(verdict), htonl(ids_[k])};
    mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof vh, &vh);
    if (withMark) mnl_attr_put_u32(nlh, NFQA_MARK, htonl(mark));
    auto* a = static_cast<struct nlattr*>(mnl_nlmsg_get_payload_tail(nlh));
    a->nla_type = NFQA_PAYLOAD;
    a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + plen);
    size_t head = NLMSG_ALIGN(nlh->nlmsg_len) + NLA_HDRLEN;
    nlh->nlmsg_len = static_cast<uint32_t>(head + NLA_ALIGN(plen));
    len += head;
    outIov_.push_back({vbuf_.data() + *seg, len - *seg});
    outIov_.push_back({slab_ + row[IX_OFFSET], plen});
    if (NLA_ALIGN(plen) != plen) outIov_.push_back({const_cast<char*>(zeros), NLA_ALIGN(plen) - plen});
    *seg = len;
    return len;
  }

  // Runs of equal verdicts (without SET_MARK / SET_PAYLOAD) -> one VERDICT_BATCH (id = last of the
  // run; every earlier id already has its verdict); SET_MARK -> one VERDICT with NFQA_MARK;
  // SET_PAYLOAD (ACCEPT only) -> one VERDICT with NFQA_PAYLOAD. One sendmsg, unless payloads make
  // the datagram longer than the socket accepts.
  void SendVerdicts(uint32_t count) {
    size_t len = 0, seg = 0, payBytes = 0;  // vbuf_ bytes written, of them already in outIov_, payload bytes there
    uint64_t nmsgs = 0;
    bool inRun = false;
    uint32_t runV = 0, runId = 0;
    outIov_.clear();
    auto flush = [&]() {
      if (outIov_.empty()) {
        if (len) SendAll(vbuf_.data(), len, nmsgs);
      } else {
        if (len > seg) outIov_.push_back({vbuf_.data() + seg, len - seg});
        SendIov(outIov_.data(), outIov_.size(), nmsgs);
        outIov_.clear();
      }
      len = seg = payBytes = 0;
      nmsgs = 0;
    };
    for (uint32_t i = 0; i < count; i++) {
      uint32_t v = verdicts_[i];
      uint32_t base = v & VERDICT_MASK;
      if ((base != NF_ACCEPT && base != NF_DROP) || (v & ~(VERDICT_MASK | VERDICT_SET_MARK | VERDICT_SET_PAYLOAD))) {
        stats_.badVerdicts++;
        v = errVerdict_;
        base = errVerdict_;
      }
      if (v & VERDICT_SET_PAYLOAD) {
        const uint32_t* row = index_ + i * INDEX_STRIDE;
        if (base != NF_ACCEPT) {
          v &= ~VERDICT_SET_PAYLOAD;  // dropped anyway
        } else if ((row[IX_FLAGS] & PKTF_TRUNCATED) || row[IX_CAPLEN] > row[IX_ROOM] || row[IX_CAPLEN] < MIN_PAYLOAD ||
                   row[IX_CAPLEN] > MAX_PAYLOAD || VERDICT_MSG_MAX + NLA_ALIGN(row[IX_CAPLEN]) > sendLimit_) {
          // We hold only part of the packet (the kernel would cut it to what we send), or the new
          // length is outside the packet's room / what nfqnl_mangle takes (a u16 attribute length).
          stats_.badVerdicts++;
          v = errVerdict_;
          base = errVerdict_;
        }
      }
      if (v & VERDICT_SET_PAYLOAD) {
        if (inRun) {
          len = PutVerdict(len, NFQNL_MSG_VERDICT_BATCH, runId, runV, false, 0);
          nmsgs++;
          inRun = false;
        }
        size_t need = VERDICT_MSG_MAX + NLA_ALIGN(index_[i * INDEX_STRIDE + IX_CAPLEN]);
        if (len + payBytes + need > sendLimit_) flush();
        len = PutPayloadVerdict(len, &seg, i, base, (v & VERDICT_SET_MARK) != 0, marks_[i]);
        payBytes += NLA_ALIGN(index_[i * INDEX_STRIDE + IX_CAPLEN]);
        nmsgs++;
      } else if (v & VERDICT_SET_MARK) {
        if (inRun) {
          len = PutVerdict(len, NFQNL_MSG_VERDICT_BATCH, runId, runV, false, 0);
          nmsgs++;
          inRun = false;
        }
        len = PutVerdict(len, NFQNL_MSG_VERDICT, ids_[i], base, true, marks_[i]);
        nmsgs++;
      } else if (inRun && v == runV) {
        runId = ids_[i];
      } else {
        if (inRun) {
          len = PutVerdict(len, NFQNL_MSG_VERDICT_BATCH, runId, runV, false, 0);
          nmsgs++;
        }
        inRun = true;
        runV = v;
        runId = ids_[i];
      }
    }
    if (inRun) {
      len = PutVerdict(len, NFQNL_MSG_VERDICT_BATCH, runId, runV, false, 0);
      nmsgs++;
    }
    flush();
  }

  // ---------------------------------------------------------------- shutdown
  // Reads what is already queued to the socket and answers it with the error verdict.
  void Drain() {
    const int pktType = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
    for (int round = 0; round < DRAIN_ROUNDS; round++) {
      int n = recvmmsg(fd_, msgs_.data(), static_cast<unsigned>(batch_), MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          stats_.enobufs++;
          continue;
        }
        break;
      }
      stats_.recvCalls++;
      size_t len = 0;
      uint64_t nmsgs = 0;
      for (int i = 0; i < n; i++) {
        int mlen = static_cast<int>(msgs_[i].msg_len);
        for (struct nlmsghdr* h = static_cast<struct nlmsghdr*>(iov_[i].iov_base); NlmsgOk(h, mlen); h = NlmsgNext(h, &mlen)) {
          uint32_t id;
          if (h->nlmsg_type == pktType && PacketId(h, &id)) {
            stats_.packets++;
            stats_.drained++;
            if (len + VERDICT_MSG_MAX > vbuf_.size()) {
              SendAll(vbuf_.data(), len, nmsgs);
              len = 0;
              nmsgs = 0;
            }
            len = PutVerdict(len, NFQNL_MSG_VERDICT, id, errVerdict_, false, 0);
            nmsgs++;
          }
        }
      }
      if (len) SendAll(vbuf_.data(), len, nmsgs);
      if (n < batch_) break;
    }
  }

  void CloseSocket() {
    if (nl_) {
      mnl_socket_close(nl_);
      nl_ = nullptr;
      fd_ = -1;
    }
  }

  // Idempotent. Never calls JavaScript (also used from the env cleanup hook and the destructor).
  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (nl_) {
      Drain();
      if (bound_) {
        struct nlmsghdr* nlh = NfqPut(cbuf_.data(), NFQNL_MSG_CONFIG, queue_, 0, ++seq_);
        struct nfqnl_msg_config_cmd cmd = {};
        cmd.command = NFQNL_CFG_CMD_UNBIND;
        cmd.pf = htons(AF_INET);
        mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof cmd, &cmd);
        mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len);
        bound_ = false;
      }
      CloseSocket();
    }
  }

  static void EnvCleanup(void* arg) {
    auto* self = static_cast<NfqQueue*>(arg);
    self->hookAdded_ = false;  // node removes it itself
    self->Shutdown();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (inCallback_) {
      // Called from onBatch: the batch's verdicts go out first, then the queue closes.
      closeRequested_ = true;
      return env.Undefined();
    }
    Shutdown();
    if (hookAdded_) {
      napi_remove_env_cleanup_hook(env, &NfqQueue::EnvCleanup, this);
      hookAdded_ = false;
    }
    if (refd_) {
      refd_ = false;
      Unref();
    }
    return env.Undefined();
  }

  // Test hook (the daemon exposes it only with NFQWALL_TEST_HOOKS=1): stop reading the socket
  // while staying bound, as a broken poll would; the kernel keeps queueing to us.
  Napi::Value DebugStopPolling(const Napi::CallbackInfo& info) {
    if (poll_ && !closed_) uv_poll_stop(poll_);
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    auto put = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
    put("packets", stats_.packets);
    put("batches", stats_.batches);
    put("recvCalls", stats_.recvCalls);
    put("verdictMsgs", stats_.verdictMsgs);
    put("sendmsgCalls", stats_.sendmsgCalls);
    put("enobufs", stats_.enobufs);
    put("truncated", stats_.truncated);
    put("errors", stats_.errors);
    put("handlerErrors", stats_.handlerErrors);
    put("badVerdicts", stats_.badVerdicts);
    put("sendErrors", stats_.sendErrors);
    put("verdictErrors", stats_.verdictErrors);
    put("recvTruncated", stats_.recvTruncated);
    put("overflow", stats_.overflow);
    put("drained", stats_.drained);
    put("setupRequeued", stats_.setupRequeued);
    return o;
  }

  Napi::Value GetData(const Napi::CallbackInfo&) { return data_.Value(); }
  Napi::Value GetIndex(const Napi::CallbackInfo&) { return indexArr_.Value(); }
  Napi::Value GetVerdicts(const Napi::CallbackInfo&) { return verdictsArr_.Value(); }
  Napi::Value GetMarks(const Napi::CallbackInfo&) { return marksArr_.Value(); }
  Napi::Value GetPortid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), portid_); }
  Napi::Value GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed_ || closeRequested_); }
  Napi::Value GetBufSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(bufSize_)); }

  struct Counters {
    uint64_t packets = 0, batches = 0, recvCalls = 0, verdictMsgs = 0, sendmsgCalls = 0, enobufs = 0, truncated = 0,
             errors = 0, handlerErrors = 0, badVerdicts = 0, sendErrors = 0, verdictErrors = 0, recvTruncated = 0,
             overflow = 0, drained = 0, setupRequeued = 0;
  };

  uint16_t queue_ = 0;
  uint32_t copyRange_ = 0xffff, maxLen_ = 4096, errVerdict_ = NF_DROP, portid_ = 0, seq_ = 0;
  int batch_ = 64, rcvbuf_ = 8 << 20;
  bool failOpen_ = false, gso_ = true;
  bool bound_ = false, closed_ = false, closeRequested_ = false, inCallback_ = false, hookAdded_ = false, refd_ = false;
  const char* openStep_ = "";
  struct mnl_socket* nl_ = nullptr;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  size_t bufSize_ = 0;
  uint8_t* slab_ = nullptr;
  uint32_t* index_ = nullptr;
  uint32_t* verdicts_ = nullptr;
  uint32_t* marks_ = nullptr;
  std::vector<uint32_t> ids_;
  std::vector<char> vbuf_, cbuf_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_, outIov_;
  size_t sendLimit_ = 200 * 1024;
  Napi::Reference<Napi::Uint8Array> data_;
  Napi::Reference<Napi::Uint32Array> indexArr_, verdictsArr_, marksArr_;
  Napi::FunctionReference onBatch_, onError_;
  Napi::AsyncContext* asyncCtx_ = nullptr;
  Counters stats_;
};

class NfqAddon : public Napi::Addon<NfqAddon> {
 public:
  NfqAddon(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = NfqQueue::Define(env);
    DefineAddon(exports, {
                             InstanceValue("NfqQueue", ctor, napi_enumerable),
                             InstanceValue("INDEX_STRIDE", Napi::Number::New(env, INDEX_STRIDE), napi_enumerable),
                             InstanceValue("MAX_BATCH", Napi::Number::New(env, MAX_BATCH), napi_enumerable),
                             InstanceMethod("kernelTimezone", &NfqAddon::KernelTimezone, napi_enumerable),
                         });
  }

 private:
  // sys_tz.tz_minuteswest, the kernel's timezone (settimeofday), which xt_time's --kerneltz
  // subtracts; gettimeofday reports it (from the vDSO: no system call).
  Napi::Value KernelTimezone(const Napi::CallbackInfo& info) {
    struct timeval tv;
    struct timezone tz;
    if (gettimeofday(&tv, &tz) != 0) return Napi::Number::New(info.Env(), 0);
    return Napi::Number::New(info.Env(), tz.tz_minuteswest);
  }
};

}  // namespace

NODE_API_ADDON(NfqAddon)
