// PacketSocket: an AF_PACKET socket (SOCK_DGRAM, ETH_P_ALL) with a BPF socket
// filter from a loaded BpfObject and a TPACKET_V3 receive ring, drained on a
// native thread. Packets reach JS as packed batches through a
// ThreadSafeFunction; see src/native/packet-socket.ts for the TS surface.
//
// Batch layout: `count` records, each 8-byte aligned:
//   0  u64 ts_ns     kernel receive/transmit time, CLOCK_REALTIME ns
//   8  u32 ifindex   device (in the socket's network namespace)
//  12  u32 caplen    bytes of the packet that follow (≤ snap length)
//  16  u32 origlen   length of the packet on the wire (from the IP header on)
//  20  u8  pkttype   PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4
//  21  u8  reserved
//  22  u16 protocol  ETH_P_IP 0x0800 / ETH_P_IPV6 0x86dd (host order)
//  24  caplen bytes from the IP header on, then zero padding to 8
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct tpacket3_hdr;
struct sockaddr_ll;

namespace flowtel {

constexpr size_t kPacketRecordHeader = 24;

class PacketSocket : public Napi::ObjectWrap<PacketSocket> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit PacketSocket(const Napi::CallbackInfo& info);
  ~PacketSocket() override;

  struct Item {
    enum Kind { kBatch, kFlushDone, kError } kind;
    uint8_t* data = nullptr;  // kBatch: malloc()ed, `cap` bytes, `len` used
    size_t len = 0;
    size_t cap = 0;
    size_t count = 0;
    uint64_t flush_id = 0;
    int err = 0;
  };

 private:
  static void CallJs(Napi::Env env, Napi::Function cb, PacketSocket* self, Item* item);
  static void OnTsfnFinalize(Napi::Env env, void* unused, PacketSocket* self);
  static void CleanupHook(void* arg);
  using Tsfn = Napi::TypedThreadSafeFunction<PacketSocket, Item, CallJs>;

  static Napi::Value Interfaces(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  void Stop(const Napi::CallbackInfo& info);
  void RefMethod(const Napi::CallbackInfo& info);
  void UnrefMethod(const Napi::CallbackInfo& info);
  Napi::Value IsRunning(const Napi::CallbackInfo& info);

  void StopImpl();  // main thread, idempotent
  void ReadKernelStats();  // main thread: PACKET_STATISTICS resets on read, so accumulate
  void Wake();
  void ThreadMain();
  bool DrainBlocks();  // reader thread; true if anything was read
  void AppendPacket(const uint8_t* pkt, const struct tpacket3_hdr* h, const struct sockaddr_ll* sll);
  void DeliverBatch();  // reader thread
  void Push(Item* item);  // reader thread

  Napi::Env env_;
  Napi::FunctionReference on_error_;
  Napi::ObjectReference failure_;
  std::string where_;  // "packet socket (netns X, ifindex N)" for messages

  int fd_ = -1;
  int epfd_ = -1;
  int evfd_ = -1;
  uint8_t* ring_ = nullptr;
  size_t ring_len_ = 0;
  uint32_t block_size_ = 0;
  uint32_t block_nr_ = 0;
  uint32_t retire_ms_ = 0;
  uint32_t next_block_ = 0;  // reader thread
  size_t max_batch_bytes_ = 1 << 20;

  std::thread thread_;
  Tsfn tsfn_;
  bool started_ = false;
  bool stopped_ = false;
  bool tsfn_alive_ = false;
  bool self_ref_ = false;
  bool hook_added_ = false;
  bool tearing_down_ = false;

  std::atomic<bool> stop_requested_{false};
  std::mutex mu_;
  // flush id -> when it may complete (every block the kernel held at flush() has retired by then)
  std::vector<std::pair<uint64_t, std::chrono::steady_clock::time_point>> flush_requests_;  // guarded by mu_

  // main thread only
  uint64_t next_flush_id_ = 1;
  std::map<uint64_t, Napi::Promise::Deferred> pending_flushes_;
  uint64_t kernel_packets_ = 0;
  uint64_t kernel_drops_ = 0;
  uint64_t kernel_freezes_ = 0;

  // reader thread only
  uint8_t* batch_ = nullptr;
  size_t batch_len_ = 0;
  size_t batch_count_ = 0;

  std::atomic<uint64_t> packets_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> blocks_{0};
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> queued_bytes_{0};
  std::atomic<uint64_t> errors_{0};
};

}  // namespace flowtel
