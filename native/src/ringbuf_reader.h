// RingBufferReader: drains a BPF_MAP_TYPE_RINGBUF map on a native thread and
// hands packed batches (count x recordSize bytes) to JS through a
// ThreadSafeFunction. See src/native/bpf.ts for the documented TS surface.
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

struct ring_buffer;

namespace flowtel {

class BpfObject;
struct AddonData;

class RingBufferReader : public Napi::ObjectWrap<RingBufferReader> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit RingBufferReader(const Napi::CallbackInfo& info);
  ~RingBufferReader() override;

  // Main thread. Stops the reader because its BpfObject is closing.
  void StopFromOwner();
  // Main thread, env cleanup hook: stop the native thread before N-API tears down.
  void StopForTeardown();

  struct Item {
    enum Kind { kBatch, kFlushDone, kError } kind;
    uint8_t* data = nullptr;  // kBatch: malloc()ed, capacity `cap` bytes
    size_t count = 0;
    size_t cap = 0;
    uint64_t flush_id = 0;
    int err = 0;
  };

 private:
  static void CallJs(Napi::Env env, Napi::Function cb, RingBufferReader* self, Item* item);
  static void OnTsfnFinalize(Napi::Env env, void* unused, RingBufferReader* self);
  using Tsfn = Napi::TypedThreadSafeFunction<RingBufferReader, Item, CallJs>;

  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  void Stop(const Napi::CallbackInfo& info);
  void RefMethod(const Napi::CallbackInfo& info);
  void UnrefMethod(const Napi::CallbackInfo& info);
  Napi::Value IsRunning(const Napi::CallbackInfo& info);

  void StopImpl();  // main thread, idempotent
  void Wake();
  void ThreadMain();
  static int OnSample(void* ctx, void* data, size_t size);
  void DeliverBatch();  // reader thread
  void Push(Item* item);  // reader thread

  AddonData* addon_ = nullptr;
  BpfObject* owner_ = nullptr;  // cleared when stopped
  Napi::ObjectReference owner_ref_;
  Napi::FunctionReference on_error_;
  Napi::ObjectReference failure_;  // set once the thread failed (main thread)
  // The Buffer every batch is copied into before the callback (main thread):
  // one allocation for the reader's life instead of a Buffer per batch that
  // only a garbage collection frees (under churn, tens of MB of dead batches
  // in the agent's RSS). A batch is valid only during its callback.
  Napi::Reference<Napi::Buffer<uint8_t>> js_batch_;
  std::string map_name_;
  size_t record_size_ = 0;
  size_t max_batch_ = 4096;
  int max_latency_ms_ = 50;

  ring_buffer* rb_ = nullptr;
  int epfd_ = -1;
  int evfd_ = -1;
  std::thread thread_;
  Tsfn tsfn_;
  bool started_ = false;   // thread + tsfn exist
  bool stopped_ = false;   // StopImpl ran (main thread)
  bool tsfn_alive_ = false;
  bool self_ref_ = false;

  std::atomic<bool> stop_requested_{false};
  std::mutex mu_;
  std::vector<uint64_t> flush_requests_;  // guarded by mu_

  // main thread only
  uint64_t next_flush_id_ = 1;
  std::map<uint64_t, Napi::Promise::Deferred> pending_flushes_;

  // reader thread only
  uint8_t* batch_ = nullptr;
  size_t batch_count_ = 0;
  std::chrono::steady_clock::time_point deadline_;

  std::atomic<uint64_t> records_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> bad_size_{0};
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> errors_{0};
};

}  // namespace flowtel
