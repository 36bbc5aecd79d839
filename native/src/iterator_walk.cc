#include "iterator_walk.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "bpf_object.h"
#include "errors.h"

namespace flowtel {

namespace {
// Chunks copied out and not yet consumed by JS. The walk thread reads the
// next chunk into the chunk map while JS has this many, and waits before it
// copies that one out: one copy (the chunk map's size, 4.75 MiB for
// dump_tracked) is all a walk holds on top of the map, and the kernel's walk
// still overlaps the JS side.
constexpr int kMaxOutstanding = 1;
}  // namespace

ChunkReader::Next ChunkReader::Read(uint32_t* records, uint32_t* side) {
  const uint32_t zero = 0, one = 1;
  uint8_t scratch[256];
  *records = 0;
  if (side) *side = 0;
  if (bpf_map_update_elem(count_fd_, &zero, &zero, BPF_ANY) ||
      (side_capacity_ > 0 && bpf_map_update_elem(count_fd_, &one, &zero, BPF_ANY))) {
    err_ = errno;
    step_ = "resetting the record count";
    return Next::kFailed;
  }
  ssize_t n = read(iter_fd_, scratch, sizeof scratch);
  int read_err = n < 0 ? errno : 0;
  uint32_t got = 0, side_got = 0;
  if (bpf_map_lookup_elem(count_fd_, &zero, &got) || (side_capacity_ > 0 && bpf_map_lookup_elem(count_fd_, &one, &side_got))) {
    err_ = errno;
    step_ = "reading the record count";
    return Next::kFailed;
  }
  got = std::min(got, capacity_);
  side_got = std::min(side_got, side_capacity_);
  *records = got;
  if (side) *side = side_got;
  if (n == 0) return Next::kDone;  // the walk is over
  if (n > 0) return Next::kMore;   // the program wrote to the seq_file: ignored
  if (read_err == EINTR) return Next::kMore;
  if (read_err != EAGAIN) {
    err_ = read_err;
    step_ = "reading the iterator";
    return Next::kFailed;
  }
  // EAGAIN: the chunk was full (or the kernel's cap of objects per read()
  // was reached). One that came back empty means no progress: give up
  // rather than spin.
  if (got > 0 || side_got > 0) {
    empty_retries_ = 0;
  } else if (++empty_retries_ > 3) {
    err_ = EAGAIN;
    step_ = "no progress (EAGAIN with an empty chunk)";
    return Next::kFailed;
  }
  return Next::kMore;
}

IteratorWalk::IteratorWalk(BpfObject* owner, Params p, Napi::Promise::Deferred deferred)
    : owner_(owner), p_(std::move(p)), deferred_(deferred) {}

IteratorWalk::~IteratorWalk() {
  if (thread_.joinable()) thread_.join();
  if (p_.iter_fd >= 0) close(p_.iter_fd);
  if (p_.chunk) munmap((void*)p_.chunk, p_.chunk_mapped);
  if (p_.side) munmap((void*)p_.side, p_.side_mapped);
}

IteratorWalk* IteratorWalk::Start(Napi::Env env, BpfObject* owner, Napi::Object owner_obj, Params p, Napi::Function on_chunk,
                                  Napi::Promise::Deferred deferred) {
  IteratorWalk* w = new IteratorWalk(owner, std::move(p), deferred);
  w->owner_ref_ = Napi::Persistent(owner_obj);
  w->on_chunk_ = Napi::Persistent(on_chunk);
  try {
    w->tsfn_ = Tsfn::New(env, Napi::Function(), "flowtel.IteratorWalk", 0 /* unbounded: the thread bounds it */, 1, w,
                         &IteratorWalk::OnFinalize, (void*)nullptr);
  } catch (...) {
    w->owner_ref_.Reset();
    w->on_chunk_.Reset();
    delete w;
    throw;
  }
  owner->AddWalk(w);
  w->thread_ = std::thread(&IteratorWalk::ThreadMain, w);
  return w;
}

void IteratorWalk::AbortFromOwner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    abort_ = true;
    closed_by_owner_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  owner_ = nullptr;
}

// ---- walk thread -------------------------------------------------------------

void IteratorWalk::Fail(int err, const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (err_ == 0) {
    err_ = err;
    err_what_ = what;
  }
}

void IteratorWalk::ThreadMain() {
  ChunkReader reader(p_.iter_fd, p_.count_fd, p_.capacity, p_.side ? p_.side_capacity : 0);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abort_) break;
    }
    uint32_t got = 0, side_got = 0;
    const ChunkReader::Next next = reader.Read(&got, &side_got);
    const size_t chunk_bytes = (size_t)got * p_.record_size;
    const size_t side_bytes = (size_t)side_got * p_.side_record_size;
    const size_t bytes = chunk_bytes + side_bytes;
    if (bytes > 0) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return outstanding_ < kMaxOutstanding || abort_; });
        if (abort_) break;
      }
      // Copied out, so the kernel can fill the chunk again while JS reads this
      // one; an anonymous mapping, given back whole when JS is done with it
      // (a malloc()ed block this size would stay in the heap's free lists).
      const long page = sysconf(_SC_PAGESIZE);
      const size_t mapped = (bytes + page - 1) / page * page;
      void* copy = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (copy == MAP_FAILED) {
        Fail(errno, "walkIterator('" + p_.prog + "'): allocating a chunk copy in " + p_.where);
        break;
      }
      memcpy(copy, p_.chunk, chunk_bytes);
      if (side_bytes > 0) memcpy((uint8_t*)copy + chunk_bytes, p_.side, side_bytes);
      {
        std::lock_guard<std::mutex> lock(mu_);
        outstanding_++;
        records_ += got + side_got;
      }
      Item* item = new Item{Item::kChunk, (uint8_t*)copy, chunk_bytes, side_bytes, mapped};
      if (tsfn_.NonBlockingCall(item) != napi_ok) {  // the environment is going away
        munmap(copy, mapped);
        delete item;
        Fail(ECANCELED, "walkIterator('" + p_.prog + "'): the JavaScript environment is closing");
        break;
      }
    }
    if (next == ChunkReader::Next::kDone) break;
    if (next == ChunkReader::Next::kFailed) {
      Fail(reader.err(), "walkIterator('" + p_.prog + "'): " + reader.step() + " in " + p_.where);
      break;
    }
  }
  Item* done = new Item{Item::kDone};
  if (tsfn_.NonBlockingCall(done) != napi_ok) delete done;
  tsfn_.Release();
}

// ---- main thread ---------------------------------------------------------------

void IteratorWalk::CallJs(Napi::Env env, Napi::Function, IteratorWalk* self, Item* item) {
  if (!item) return;
  if ((napi_env)env == nullptr) {  // torn down with items queued: free them, touch no JS value
    if (item->data) munmap(item->data, item->mapped);
    delete item;
    return;
  }
  if (item->kind == Item::kChunk) {
    bool skip;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      skip = self->abort_;
    }
    if (!skip) {
      // A view over the copy, detached when the call returns: a view kept by mistake reads as empty.
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, item->data, item->bytes + item->side_bytes);
      Napi::Uint8Array u8 = Napi::Uint8Array::New(env, item->bytes, ab, 0);
      try {
        if (self->p_.side)
          self->on_chunk_.Call({u8, Napi::Uint8Array::New(env, item->side_bytes, ab, item->bytes)});
        else
          self->on_chunk_.Call({u8});
      } catch (const Napi::Error& e) {
        // The walk stops; the promise is rejected with what onChunk threw.
        self->js_error_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
        {
          std::lock_guard<std::mutex> lock(self->mu_);
          self->abort_ = true;
        }
      }
      ab.Detach();
    }
    munmap(item->data, item->mapped);
    delete item;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->outstanding_--;
    }
    self->cv_.notify_all();
    return;
  }
  delete item;
  self->Settle(env);
}

void IteratorWalk::Settle(Napi::Env env) {
  if (thread_.joinable()) thread_.join();  // it has queued kDone: only its last steps are left
  if (owner_) owner_->RemoveWalk(this);
  owner_ = nullptr;
  Napi::HandleScope scope(env);
  if (!js_error_.IsEmpty()) {
    deferred_.Reject(js_error_.Value());
  } else if (closed_by_owner_) {
    deferred_.Reject(CodeError(env, "ERR_BPF_CLOSED", "walkIterator('" + p_.prog + "'): BPF object " + p_.where + " was closed during the walk").Value());
  } else if (err_ != 0) {
    deferred_.Reject(ErrnoError(env, err_, err_what_).Value());
  } else {
    deferred_.Resolve(Napi::Number::New(env, (double)records_));
  }
  js_error_.Reset();
  on_chunk_.Reset();
  owner_ref_.Reset();
}

void IteratorWalk::OnFinalize(Napi::Env, void*, IteratorWalk* self) {
  if (self->owner_) self->owner_->RemoveWalk(self);
  delete self;
}

}  // namespace flowtel
