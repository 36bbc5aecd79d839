// IteratorWalk: one walk of a chunked BPF iterator (see BpfObject::DrainIterator)
// on a native thread, each chunk handed to JS through a ThreadSafeFunction
// while the kernel goes on walking: the walk's kernel time and the JS time
// spent on its chunks overlap instead of adding up. The JS side gets a
// Promise of the number of records. See src/native/bpf.ts (walkIterator).
#pragma once

#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace flowtel {

class BpfObject;

// One read() of a chunked iterator (shared by drainIterator and IteratorWalk):
// empties the count map, reads, and says how many records the chunk map
// holds and what comes next. With a side map (side_capacity > 0), the
// program also writes records there and their number into count[1].
// Thread-agnostic: no JS.
class ChunkReader {
 public:
  enum class Next { kMore, kDone, kFailed };
  ChunkReader(int iter_fd, int count_fd, uint32_t capacity, uint32_t side_capacity = 0)
      : iter_fd_(iter_fd), count_fd_(count_fd), capacity_(capacity), side_capacity_(side_capacity) {}
  // Reads on; `records` gets how many the chunk map holds now (0..capacity),
  // `side` how many the side map holds (0 without one).
  // kFailed: err() and step() say why ("resetting the record count", ...).
  Next Read(uint32_t* records, uint32_t* side = nullptr);
  int err() const { return err_; }
  const char* step() const { return step_; }

 private:
  int iter_fd_, count_fd_;
  uint32_t capacity_, side_capacity_;
  int empty_retries_ = 0;
  int err_ = 0;
  const char* step_ = "";
};

class IteratorWalk {
 public:
  struct Params {
    std::string prog;    // for messages
    std::string where;   // "'<path>'" for messages
    int iter_fd = -1;    // owned from here on
    int count_fd = -1;   // the count map (not owned)
    const uint8_t* chunk = nullptr;  // the chunk map, mapped read-only (owned: munmap)
    size_t chunk_mapped = 0;
    size_t record_size = 0;
    uint32_t capacity = 0;  // records per chunk
    // Optional side map (count in count[1]): its records come with each chunk, after the chunk's.
    const uint8_t* side = nullptr;  // mapped read-only (owned: munmap)
    size_t side_mapped = 0;
    size_t side_record_size = 0;
    uint32_t side_capacity = 0;
  };

  // Starts the walk; the returned object deletes itself once the promise is settled.
  static IteratorWalk* Start(Napi::Env env, BpfObject* owner, Napi::Object owner_obj, Params p, Napi::Function on_chunk,
                             Napi::Promise::Deferred deferred);

  // Main thread: the owner is closing. Stops the walk after the read() in
  // progress and waits for the thread; the promise is rejected (later, from
  // the TSFN queue) with ERR_BPF_CLOSED.
  void AbortFromOwner();

  struct Item {
    enum Kind { kChunk, kDone } kind;
    uint8_t* data = nullptr;  // kChunk: mmap()ed copy of the chunk, then of the side map's records
    size_t bytes = 0;         // of the chunk's records
    size_t side_bytes = 0;    // of the side map's, after them
    size_t mapped = 0;
  };

 private:
  IteratorWalk(BpfObject* owner, Params p, Napi::Promise::Deferred deferred);
  ~IteratorWalk();

  static void CallJs(Napi::Env env, Napi::Function unused, IteratorWalk* self, Item* item);
  static void OnFinalize(Napi::Env env, void* unused, IteratorWalk* self);
  using Tsfn = Napi::TypedThreadSafeFunction<IteratorWalk, Item, CallJs>;

  void ThreadMain();
  void Fail(int err, const std::string& what);  // walk thread
  void Settle(Napi::Env env);                    // main thread, on kDone

  BpfObject* owner_;  // cleared when the owner closes
  Params p_;
  Tsfn tsfn_;
  std::thread thread_;
  Napi::ObjectReference owner_ref_;
  Napi::FunctionReference on_chunk_;
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Value> js_error_;  // set when onChunk threw

  // Shared with the walk thread.
  std::mutex mu_;
  std::condition_variable cv_;
  int outstanding_ = 0;  // chunks handed to JS and not yet consumed
  bool abort_ = false;
  bool closed_by_owner_ = false;
  uint64_t records_ = 0;
  int err_ = 0;
  std::string err_what_;
};

}  // namespace flowtel
