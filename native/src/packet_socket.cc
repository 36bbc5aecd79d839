#include "packet_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "addon.h"
#include "bpf_object.h"
#include "errors.h"

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

namespace flowtel {

namespace {

constexpr uint64_t kTagSocket = 1;
constexpr uint64_t kTagEvent = 2;
constexpr int kIdlePollMs = 200;  // re-check the ring even without a wakeup
// Bytes of batches handed to JS and not yet consumed, at most: beyond it the
// reader leaves blocks in the ring, so a stalled JS thread makes the kernel
// drop (and count, tp_drops) instead of the agent's memory growing without bound.
constexpr uint64_t kMaxQueuedBytes = 64ull << 20;
constexpr int kBackoffMs = 5;

size_t Align8(size_t n) { return (n + 7) & ~(size_t)7; }

// Runs fn on a short-lived thread that first joins the network namespace at
// ns_path (empty: the caller's). setns() only affects that thread, so the JS
// thread never changes namespace; sockets keep the namespace they were
// created in. Returns 0 or -errno; *what names the failed step.
template <typename Fn>
int InNetns(const std::string& ns_path, const char** what, Fn fn) {
  if (ns_path.empty()) return fn(what);
  int result = -EINVAL;
  std::thread t([&] {
    int ns = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      result = -errno;
      *what = "cannot open network namespace";
      return;
    }
    if (setns(ns, CLONE_NEWNET) != 0) {
      result = -errno;
      *what = "setns(CLONE_NEWNET) failed for network namespace";
      close(ns);
      return;
    }
    close(ns);
    result = fn(what);
  });
  t.join();
  return result;
}

double OptNumber(Napi::Env env, Napi::Object opts, const char* key, double lo, double hi, double dflt) {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", std::string("options.") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != (double)(int64_t)d)
    ThrowCode(env, "ERR_OUT_OF_RANGE",
              std::string("options.") + key + " must be an integer in [" + std::to_string((int64_t)lo) + ", " +
                  std::to_string((int64_t)hi) + "]");
  return d;
}

}  // namespace

Napi::Function PacketSocket::Init(Napi::Env env) {
  return DefineClass(env, "PacketSocket",
                     {
                         StaticMethod<&PacketSocket::Interfaces>("interfaces"),
                         InstanceMethod<&PacketSocket::Flush>("flush"),
                         InstanceMethod<&PacketSocket::Stats>("stats"),
                         InstanceMethod<&PacketSocket::Stop>("stop"),
                         InstanceMethod<&PacketSocket::RefMethod>("ref"),
                         InstanceMethod<&PacketSocket::UnrefMethod>("unref"),
                         InstanceMethod<&PacketSocket::IsRunning>("isRunning"),
                     });
}

// PacketSocket.interfaces(netnsPath?) -> {index, name}[]
Napi::Value PacketSocket::Interfaces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns_path;
  if (info.Length() > 0 && !info[0].IsUndefined()) ns_path = ArgString(info, 0, "netnsPath");
  std::vector<std::pair<unsigned, std::string>> found;
  const char* what = "";
  int r = InNetns(ns_path, &what, [&](const char** w) {
    struct if_nameindex* ifs = if_nameindex();
    if (!ifs) {
      *w = "if_nameindex failed in network namespace";
      return -errno;
    }
    for (struct if_nameindex* i = ifs; i->if_index != 0; i++) found.emplace_back(i->if_index, i->if_name);
    if_freenameindex(ifs);
    return 0;
  });
  if (r < 0) ThrowErrno(env, -r, std::string("PacketSocket.interfaces: ") + what + " '" + ns_path + "'");
  Napi::Array out = Napi::Array::New(env, found.size());
  for (size_t i = 0; i < found.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, found[i].first));
    o.Set("name", Napi::String::New(env, found[i].second));
    out.Set((uint32_t)i, o);
  }
  return out;
}

// new PacketSocket(obj, progName, onBatch, options?)
PacketSocket::PacketSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PacketSocket>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  AddonData* addon = GetAddonData(env);
  if (info.Length() < 1 || !info[0].IsObject() ||
      !info[0].As<Napi::Object>().InstanceOf(addon->bpf_object_ctor.Value())) {
    Napi::TypeError e = Napi::TypeError::New(env, "argument 0 (obj) must be a BpfObject");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  BpfObject* obj = BpfObject::Unwrap(info[0].As<Napi::Object>());
  std::string prog = ArgString(info, 1, "progName");
  if (info.Length() < 3 || !info[2].IsFunction()) {
    Napi::TypeError e = Napi::TypeError::New(env, "argument 2 (onBatch) must be a function");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  Napi::Function on_batch = info[2].As<Napi::Function>();
  std::string ns_path;
  uint32_t ifindex = 0;
  block_size_ = 256 * 1024;
  block_nr_ = 16;
  retire_ms_ = 20;
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object opts = info[3].As<Napi::Object>();
    Napi::Value v = opts.Get("netnsPath");
    if (!v.IsUndefined()) {
      if (!v.IsString()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options.netnsPath must be a string");
      ns_path = v.As<Napi::String>().Utf8Value();
    }
    long page = sysconf(_SC_PAGESIZE);
    ifindex = (uint32_t)OptNumber(env, opts, "ifindex", 0, 2147483647, 0);
    block_size_ = (uint32_t)OptNumber(env, opts, "blockSize", (double)page, 1 << 26, block_size_);
    if (block_size_ % page || (block_size_ & (block_size_ - 1)))
      ThrowCode(env, "ERR_OUT_OF_RANGE", "options.blockSize must be a power of two multiple of the page size");
    block_nr_ = (uint32_t)OptNumber(env, opts, "blockCount", 2, 65536, block_nr_);
    retire_ms_ = (uint32_t)OptNumber(env, opts, "retireMs", 1, 10000, retire_ms_);
    max_batch_bytes_ = (size_t)OptNumber(env, opts, "maxBatchBytes", 65536, 1 << 28, (double)max_batch_bytes_);
    v = opts.Get("onError");
    if (!v.IsUndefined()) {
      if (!v.IsFunction()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options.onError must be a function");
      on_error_ = Napi::Persistent(v.As<Napi::Function>());
    }
  }
  where_ = "packet socket (" + (ns_path.empty() ? std::string("own network namespace") : "network namespace '" + ns_path + "'") +
           ", " + (ifindex ? "ifindex " + std::to_string(ifindex) : std::string("all interfaces")) + ")";
  int prog_fd = obj->RequireLoadedProgramFd(env, prog);

  // Protocol 0: the socket receives nothing until bind() below, after the
  // filter and the ring are in place.
  const char* what = "";
  int fd = InNetns(ns_path, &what, [&](const char** w) {
    int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) {
      *w = "socket(AF_PACKET) failed in";
      return -errno;
    }
    return s;
  });
  if (fd < 0) ThrowErrno(env, -fd, std::string("PacketSocket: ") + what + " " + where_);
  fd_ = fd;
  auto fail = [&](const std::string& step) {
    int err = errno;
    if (ring_) munmap(ring_, ring_len_);
    ring_ = nullptr;
    if (fd_ >= 0) close(fd_);
    if (evfd_ >= 0) close(evfd_);
    if (epfd_ >= 0) close(epfd_);
    fd_ = evfd_ = epfd_ = -1;
    ThrowErrno(env, err, "PacketSocket: " + step + " on " + where_);
  };
  if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd))) fail("SO_ATTACH_BPF (program '" + prog + "')");
  int ver = TPACKET_V3;
  if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver))) fail("PACKET_VERSION TPACKET_V3");
  struct tpacket_req3 req = {};
  req.tp_block_size = block_size_;
  req.tp_block_nr = block_nr_;
  req.tp_frame_size = 2048;
  req.tp_frame_nr = (block_size_ / req.tp_frame_size) * block_nr_;
  req.tp_retire_blk_tov = retire_ms_;
  if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req))) fail("PACKET_RX_RING");
  ring_len_ = (size_t)block_size_ * block_nr_;
  void* m = mmap(nullptr, ring_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (m == MAP_FAILED) fail("mmap of the receive ring");
  ring_ = (uint8_t*)m;
  struct sockaddr_ll sll = {};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)ifindex;
  if (bind(fd_, (struct sockaddr*)&sll, sizeof(sll))) fail("bind");
  evfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (evfd_ < 0) fail("eventfd");
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) fail("epoll_create1");
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagSocket;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd_, &ev)) fail("epoll_ctl");
  ev.data.u64 = kTagEvent;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev)) fail("epoll_ctl");

  tsfn_ = Tsfn::New(env, on_batch, "flowtel.PacketSocket", 0 /* unbounded queue */, 1, this, &PacketSocket::OnTsfnFinalize,
                    (void*)nullptr);
  tsfn_alive_ = true;
  // Registered after the TSFN's own hook, so it runs first: the thread is
  // joined while the TSFN still exists.
  napi_add_env_cleanup_hook(env, &PacketSocket::CleanupHook, this);
  hook_added_ = true;
  Ref();  // alive while the TSFN may call into it
  self_ref_ = true;
  started_ = true;
  thread_ = std::thread(&PacketSocket::ThreadMain, this);
}

PacketSocket::~PacketSocket() { StopImpl(); }

void PacketSocket::CleanupHook(void* arg) {
  PacketSocket* self = static_cast<PacketSocket*>(arg);
  self->tearing_down_ = true;
  self->hook_added_ = false;
  self->StopImpl();
}

void PacketSocket::Wake() {
  uint64_t one = 1;
  ssize_t r = write(evfd_, &one, sizeof(one));
  (void)r;
}

void PacketSocket::ReadKernelStats() {
  if (fd_ < 0) return;
  struct tpacket_stats_v3 st = {};
  socklen_t len = sizeof(st);
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
    // tp_packets already includes tp_drops (the kernel adds them on read).
    kernel_packets_ += st.tp_packets;
    kernel_drops_ += st.tp_drops;
    kernel_freezes_ += st.tp_freeze_q_cnt;
  }
}

void PacketSocket::StopImpl() {
  if (stopped_) return;
  stopped_ = true;
  if (hook_added_) {
    napi_remove_env_cleanup_hook(env_, &PacketSocket::CleanupHook, this);
    hook_added_ = false;
  }
  if (started_) {
    stop_requested_.store(true);
    Wake();
    if (thread_.joinable()) thread_.join();
  }
  ReadKernelStats();
  if (ring_) munmap(ring_, ring_len_);
  ring_ = nullptr;
  if (fd_ >= 0) close(fd_);
  if (epfd_ >= 0) close(epfd_);
  if (evfd_ >= 0) close(evfd_);
  fd_ = epfd_ = evfd_ = -1;
  if (tsfn_alive_) tsfn_.Release();
}

void PacketSocket::Stop(const Napi::CallbackInfo& info) { StopImpl(); }

void PacketSocket::RefMethod(const Napi::CallbackInfo& info) {
  if (!stopped_ && tsfn_alive_) tsfn_.Ref(info.Env());
}

void PacketSocket::UnrefMethod(const Napi::CallbackInfo& info) {
  if (!stopped_ && tsfn_alive_) tsfn_.Unref(info.Env());
}

Napi::Value PacketSocket::IsRunning(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !stopped_); }

// Resolves once every packet the kernel accepted before the call has been
// delivered: the reader waits one block-retire period (a partly filled block
// is handed to user space at most retireMs after its first packet), drains,
// and delivers.
Napi::Value PacketSocket::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  if (!failure_.IsEmpty()) {
    d.Reject(failure_.Value());
    return d.Promise();
  }
  if (stopped_) {
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  uint64_t id = next_flush_id_++;
  pending_flushes_.emplace(id, d);
  {
    std::lock_guard<std::mutex> lock(mu_);
    flush_requests_.emplace_back(id, std::chrono::steady_clock::now() + std::chrono::milliseconds(retire_ms_ + 10));
  }
  Wake();
  return d.Promise();
}

Napi::Value PacketSocket::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadKernelStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kernelPackets", Napi::Number::New(env, (double)kernel_packets_));
  o.Set("kernelDrops", Napi::Number::New(env, (double)kernel_drops_));
  o.Set("kernelFreezes", Napi::Number::New(env, (double)kernel_freezes_));
  o.Set("packets", Napi::Number::New(env, (double)packets_.load()));
  o.Set("bytes", Napi::Number::New(env, (double)bytes_.load()));
  o.Set("batches", Napi::Number::New(env, (double)batches_.load()));
  o.Set("blocks", Napi::Number::New(env, (double)blocks_.load()));
  o.Set("queuedBatches", Napi::Number::New(env, (double)queued_.load()));
  o.Set("errors", Napi::Number::New(env, (double)errors_.load()));
  o.Set("running", Napi::Boolean::New(env, !stopped_));
  return o;
}

// ---- reader thread ---------------------------------------------------------

void PacketSocket::Push(Item* item) {
  queued_.fetch_add(1);
  napi_status st = tsfn_.NonBlockingCall(item);
  if (st != napi_ok) {  // napi_closing: the environment is going away
    queued_.fetch_sub(1);
    queued_bytes_.fetch_sub(item->len);
    free(item->data);
    delete item;
  }
}

void PacketSocket::DeliverBatch() {
  if (!batch_ || batch_count_ == 0) return;
  size_t cap = max_batch_bytes_;
  if (batch_len_ < cap / 2) {
    uint8_t* shrunk = (uint8_t*)realloc(batch_, batch_len_);
    if (shrunk) {
      batch_ = shrunk;
      cap = batch_len_;
    }
  }
  Item* item = new Item();
  item->kind = Item::kBatch;
  item->data = batch_;
  item->len = batch_len_;
  item->cap = cap;
  item->count = batch_count_;
  batch_ = nullptr;
  batch_len_ = batch_count_ = 0;
  batches_.fetch_add(1, std::memory_order_relaxed);
  queued_bytes_.fetch_add(item->len);
  Push(item);
}

void PacketSocket::AppendPacket(const uint8_t* pkt, const struct tpacket3_hdr* h, const struct sockaddr_ll* sll) {
  size_t caplen = h->tp_snaplen;
  size_t rec = kPacketRecordHeader + Align8(caplen);
  if (batch_ && batch_len_ + rec > max_batch_bytes_) DeliverBatch();
  if (!batch_) {
    batch_ = (uint8_t*)malloc(max_batch_bytes_ > rec ? max_batch_bytes_ : rec);
    if (!batch_) return;  // counted as kernelPackets - packets
    batch_len_ = batch_count_ = 0;
  }
  uint8_t* r = batch_ + batch_len_;
  uint64_t ts = (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec;
  uint32_t ifindex = (uint32_t)sll->sll_ifindex;
  uint32_t cap32 = (uint32_t)caplen, orig = h->tp_len;
  uint16_t proto = ntohs(sll->sll_protocol);
  memcpy(r, &ts, 8);
  memcpy(r + 8, &ifindex, 4);
  memcpy(r + 12, &cap32, 4);
  memcpy(r + 16, &orig, 4);
  r[20] = sll->sll_pkttype;
  r[21] = 0;
  memcpy(r + 22, &proto, 2);
  memcpy(r + kPacketRecordHeader, pkt, caplen);
  memset(r + kPacketRecordHeader + caplen, 0, rec - kPacketRecordHeader - caplen);
  batch_len_ += rec;
  batch_count_++;
  packets_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(caplen, std::memory_order_relaxed);
}

bool PacketSocket::DrainBlocks() {
  bool any = false;
  for (uint32_t n = 0; n < block_nr_; n++) {
    auto* bd = (struct tpacket_block_desc*)(ring_ + (size_t)next_block_ * block_size_);
    if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
    uint32_t num = bd->hdr.bh1.num_pkts;
    size_t off = bd->hdr.bh1.offset_to_first_pkt;
    for (uint32_t i = 0; i < num; i++) {
      if (off + sizeof(struct tpacket3_hdr) > block_size_) break;
      auto* h = (const struct tpacket3_hdr*)((const uint8_t*)bd + off);
      auto* sll = (const struct sockaddr_ll*)((const uint8_t*)h + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
      if (off + h->tp_mac + (size_t)h->tp_snaplen > block_size_) break;
      AppendPacket((const uint8_t*)h + h->tp_mac, h, sll);
      if (h->tp_next_offset == 0) break;
      off += h->tp_next_offset;
    }
    __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    next_block_ = (next_block_ + 1) % block_nr_;
    blocks_.fetch_add(1, std::memory_order_relaxed);
    any = true;
  }
  return any;
}

void PacketSocket::ThreadMain() {
  struct epoll_event events[4];
  int fail_err = 0;
  for (;;) {
    bool backlog = queued_bytes_.load() >= kMaxQueuedBytes;
    int timeout = backlog ? kBackoffMs : kIdlePollMs;
    auto now = std::chrono::steady_clock::now();
    if (!backlog) {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& f : flush_requests_) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(f.second - now).count() + 1;
        if (ms < 0) ms = 0;
        if (ms < timeout) timeout = (int)ms;
      }
    }
    int n = 0;
    if (stop_requested_.load()) {
      n = 0;
    } else if (backlog) {
      // The socket stays readable while blocks wait: watch only the eventfd.
      struct pollfd pf = {evfd_, POLLIN, 0};
      if (poll(&pf, 1, timeout) > 0) {
        uint64_t v;
        ssize_t r = read(evfd_, &v, sizeof(v));
        (void)r;
      }
    } else {
      n = epoll_wait(epfd_, events, 4, timeout);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_err = errno;
      n = 0;
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.u64 == kTagEvent) {
        uint64_t v;
        ssize_t r = read(evfd_, &v, sizeof(v));
        (void)r;
      }
    }
    bool stopping = stop_requested_.load();
    // With a backlog the ring is left alone; flushes wait for a pass that drains.
    bool drain = !fail_err && (stopping || queued_bytes_.load() < kMaxQueuedBytes);
    now = std::chrono::steady_clock::now();
    std::vector<uint64_t> done;
    if (drain || fail_err) {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < flush_requests_.size();) {
        if (stopping || flush_requests_[i].second <= now) {
          done.push_back(flush_requests_[i].first);
          flush_requests_[i] = flush_requests_.back();
          flush_requests_.pop_back();
        } else {
          i++;
        }
      }
    }
    if (drain) DrainBlocks();
    DeliverBatch();  // blocks already batch packets in time: one delivery per pass
    for (uint64_t id : done) {
      Item* item = new Item();
      item->kind = Item::kFlushDone;
      item->flush_id = id;
      Push(item);
    }
    if (fail_err) {
      errors_.fetch_add(1);
      Item* item = new Item();
      item->kind = Item::kError;
      item->err = fail_err;
      Push(item);
      break;
    }
    if (stopping) break;
  }
  free(batch_);
  batch_ = nullptr;
  batch_len_ = batch_count_ = 0;
}

// ---- main thread (TSFN) ----------------------------------------------------

void PacketSocket::CallJs(Napi::Env env, Napi::Function cb, PacketSocket* self, Item* item) {
  if (!item) return;
  if ((napi_env)env == nullptr || self == nullptr || self->tearing_down_) {
    free(item->data);
    delete item;
    return;
  }
  self->queued_.fetch_sub(1);
  self->queued_bytes_.fetch_sub(item->len);
  try {
    switch (item->kind) {
      case Item::kBatch: {
        Napi::Buffer<uint8_t> buf = OwnedBuffer(env, item->data, item->len, item->cap);
        item->data = nullptr;
        cb.Call({buf, Napi::Number::New(env, (double)item->count)});
        break;
      }
      case Item::kFlushDone: {
        auto it = self->pending_flushes_.find(item->flush_id);
        if (it != self->pending_flushes_.end()) {
          Napi::Promise::Deferred d = it->second;
          self->pending_flushes_.erase(it);
          d.Resolve(env.Undefined());
        }
        break;
      }
      case Item::kError: {
        Napi::Error e = ErrnoError(env, item->err, self->where_ + " failed");
        self->failure_ = Napi::Persistent(e.Value());
        auto pending = std::move(self->pending_flushes_);
        self->pending_flushes_.clear();
        for (auto& kv : pending) kv.second.Reject(e.Value());
        if (!self->on_error_.IsEmpty()) self->on_error_.Call({e.Value()});
        break;
      }
    }
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
  free(item->data);
  delete item;
}

void PacketSocket::OnTsfnFinalize(Napi::Env env, void* unused, PacketSocket* self) {
  self->tsfn_alive_ = false;
  if (self->tearing_down_) {
    self->self_ref_ = false;
    return;
  }
  auto pending = std::move(self->pending_flushes_);
  self->pending_flushes_.clear();
  for (auto& kv : pending) kv.second.Resolve(env.Undefined());
  if (self->self_ref_) {
    self->self_ref_ = false;
    self->Unref();
  }
}

}  // namespace flowtel
