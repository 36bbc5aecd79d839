#include "ringbuf_reader.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "addon.h"
#include "bpf_object.h"
#include "errors.h"

namespace flowtel {

namespace {
constexpr uint64_t kTagRing = 1;
constexpr uint64_t kTagEvent = 2;
}  // namespace

Napi::Function RingBufferReader::Init(Napi::Env env) {
  return DefineClass(env, "RingBufferReader",
                     {
                         InstanceMethod<&RingBufferReader::Flush>("flush"),
                         InstanceMethod<&RingBufferReader::Stats>("stats"),
                         InstanceMethod<&RingBufferReader::Stop>("stop"),
                         InstanceMethod<&RingBufferReader::RefMethod>("ref"),
                         InstanceMethod<&RingBufferReader::UnrefMethod>("unref"),
                         InstanceMethod<&RingBufferReader::IsRunning>("isRunning"),
                     });
}

// new RingBufferReader(obj, mapName, recordSize, onBatch, options?)
RingBufferReader::RingBufferReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBufferReader>(info) {
  Napi::Env env = info.Env();
  addon_ = GetAddonData(env);
  if (info.Length() < 1 || !info[0].IsObject() ||
      !info[0].As<Napi::Object>().InstanceOf(addon_->bpf_object_ctor.Value())) {
    Napi::TypeError e = Napi::TypeError::New(env, "argument 0 (obj) must be a BpfObject");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  BpfObject* owner = BpfObject::Unwrap(info[0].As<Napi::Object>());
  map_name_ = ArgString(info, 1, "mapName");
  record_size_ = ArgUint32(info, 2, "recordSize");
  if (record_size_ == 0) ThrowCode(env, "ERR_OUT_OF_RANGE", "recordSize must be > 0");
  if (info.Length() < 4 || !info[3].IsFunction()) {
    Napi::TypeError e = Napi::TypeError::New(env, "argument 3 (onBatch) must be a function");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  Napi::Function on_batch = info[3].As<Napi::Function>();
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Object opts = info[4].As<Napi::Object>();
    Napi::Value v = opts.Get("maxBatchRecords");
    if (!v.IsUndefined()) {
      if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 1 || v.As<Napi::Number>().DoubleValue() > (1 << 24))
        ThrowCode(env, "ERR_OUT_OF_RANGE", "options.maxBatchRecords must be a number in [1, 16777216]");
      max_batch_ = (size_t)v.As<Napi::Number>().DoubleValue();
    }
    v = opts.Get("maxLatencyMs");
    if (!v.IsUndefined()) {
      if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0 || v.As<Napi::Number>().DoubleValue() > 3600000)
        ThrowCode(env, "ERR_OUT_OF_RANGE", "options.maxLatencyMs must be a number in [0, 3600000]");
      max_latency_ms_ = (int)v.As<Napi::Number>().DoubleValue();
    }
    v = opts.Get("onError");
    if (!v.IsUndefined()) {
      if (!v.IsFunction()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options.onError must be a function");
      on_error_ = Napi::Persistent(v.As<Napi::Function>());
    }
  }
  if ((uint64_t)max_batch_ * record_size_ > (1ull << 31))
    ThrowCode(env, "ERR_OUT_OF_RANGE", "maxBatchRecords x recordSize must not exceed 2 GiB");

  bpf_map* map = owner->RequireLoadedMap(env, map_name_);
  if (bpf_map__type(map) != BPF_MAP_TYPE_RINGBUF)
    ThrowCode(env, "ERR_BPF_BAD_TYPE",
              "map '" + map_name_ + "' in '" + owner->path() + "' is not a BPF_MAP_TYPE_RINGBUF (type " +
                  std::to_string(bpf_map__type(map)) + ")");

  errno = 0;
  rb_ = ring_buffer__new(bpf_map__fd(map), &RingBufferReader::OnSample, this, nullptr);
  if (!rb_) ThrowErrno(env, errno ? errno : EINVAL, "ring_buffer__new for map '" + map_name_ + "'");
  evfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  int err = 0;
  if (evfd_ < 0 || epfd_ < 0) err = errno;
  if (!err) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagRing;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, ring_buffer__epoll_fd(rb_), &ev)) err = errno;
    ev.data.u64 = kTagEvent;
    if (!err && epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev)) err = errno;
  }
  if (err) {
    ring_buffer__free(rb_);
    rb_ = nullptr;
    if (evfd_ >= 0) close(evfd_);
    if (epfd_ >= 0) close(epfd_);
    evfd_ = epfd_ = -1;
    ThrowErrno(env, err, "setting up epoll for ring buffer '" + map_name_ + "'");
  }

  tsfn_ = Tsfn::New(env, on_batch, "flowtel.RingBufferReader", 0 /* unbounded queue */, 1, this,
                    &RingBufferReader::OnTsfnFinalize, (void*)nullptr);
  tsfn_alive_ = true;
  owner_ = owner;
  owner_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
  owner->AddReader(this);
  addon_->readers.insert(this);
  // Keep the JS object alive while the TSFN may still call into it.
  Ref();
  self_ref_ = true;
  started_ = true;
  thread_ = std::thread(&RingBufferReader::ThreadMain, this);
}

RingBufferReader::~RingBufferReader() {
  StopImpl();
  if (addon_) addon_->readers.erase(this);
}

void RingBufferReader::Wake() {
  uint64_t one = 1;
  ssize_t r = write(evfd_, &one, sizeof(one));
  (void)r;  // EAGAIN means the counter is already non-zero: a wakeup is pending
}

void RingBufferReader::StopImpl() {
  if (stopped_) return;
  stopped_ = true;
  if (started_) {
    stop_requested_.store(true);
    Wake();
    if (thread_.joinable()) thread_.join();
  }
  if (rb_) ring_buffer__free(rb_);
  rb_ = nullptr;
  if (epfd_ >= 0) close(epfd_);
  if (evfd_ >= 0) close(evfd_);
  epfd_ = evfd_ = -1;
  if (owner_) owner_->RemoveReader(this);
  owner_ = nullptr;
  if (!owner_ref_.IsEmpty()) owner_ref_.Reset();
  // Queued batches/flush resolutions are still delivered; the finalizer runs after them.
  if (tsfn_alive_) tsfn_.Release();
}

void RingBufferReader::StopFromOwner() {
  owner_ = nullptr;  // the owner is clearing its own set
  StopImpl();
}

void RingBufferReader::StopForTeardown() {
  StopImpl();
}

void RingBufferReader::Stop(const Napi::CallbackInfo& info) { StopImpl(); }

void RingBufferReader::RefMethod(const Napi::CallbackInfo& info) {
  if (!stopped_ && tsfn_alive_) tsfn_.Ref(info.Env());
}

void RingBufferReader::UnrefMethod(const Napi::CallbackInfo& info) {
  if (!stopped_ && tsfn_alive_) tsfn_.Unref(info.Env());
}

Napi::Value RingBufferReader::IsRunning(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !stopped_);
}

Napi::Value RingBufferReader::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  if (!failure_.IsEmpty()) {
    d.Reject(failure_.Value());
    return d.Promise();
  }
  if (stopped_) {  // stop() already drained the ring and queued everything before this call
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  uint64_t id = next_flush_id_++;
  pending_flushes_.emplace(id, d);
  {
    std::lock_guard<std::mutex> lock(mu_);
    flush_requests_.push_back(id);
  }
  Wake();
  return d.Promise();
}

Napi::Value RingBufferReader::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("records", Napi::Number::New(env, (double)records_.load()));
  o.Set("batches", Napi::Number::New(env, (double)batches_.load()));
  o.Set("badSize", Napi::Number::New(env, (double)bad_size_.load()));
  o.Set("queuedBatches", Napi::Number::New(env, (double)queued_.load()));
  o.Set("errors", Napi::Number::New(env, (double)errors_.load()));
  o.Set("running", Napi::Boolean::New(env, !stopped_));
  return o;
}

// ---- reader thread ---------------------------------------------------------

int RingBufferReader::OnSample(void* ctx, void* data, size_t size) {
  RingBufferReader* self = static_cast<RingBufferReader*>(ctx);
  if (size != self->record_size_) {
    self->bad_size_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  if (!self->batch_) {
    self->batch_ = (uint8_t*)malloc(self->max_batch_ * self->record_size_);
    if (!self->batch_) return -ENOMEM;
    self->batch_count_ = 0;
  }
  if (self->batch_count_ == 0)
    self->deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(self->max_latency_ms_);
  memcpy(self->batch_ + self->batch_count_ * self->record_size_, data, size);
  self->batch_count_++;
  self->records_.fetch_add(1, std::memory_order_relaxed);
  if (self->batch_count_ >= self->max_batch_) self->DeliverBatch();
  return 0;
}

void RingBufferReader::Push(Item* item) {
  queued_.fetch_add(1);
  napi_status st = tsfn_.NonBlockingCall(item);
  if (st != napi_ok) {  // napi_closing: the environment is going away
    queued_.fetch_sub(1);
    free(item->data);
    delete item;
  }
}

void RingBufferReader::DeliverBatch() {
  if (!batch_ || batch_count_ == 0) return;
  size_t cap = max_batch_ * record_size_;
  size_t used = batch_count_ * record_size_;
  if (used < cap / 2) {  // mostly empty (latency/flush delivery): give the rest back
    uint8_t* shrunk = (uint8_t*)realloc(batch_, used);
    if (shrunk) {
      batch_ = shrunk;
      cap = used;
    }
  }
  Item* item = new Item();
  item->kind = Item::kBatch;
  item->data = batch_;
  item->count = batch_count_;
  item->cap = cap;
  batch_ = nullptr;
  batch_count_ = 0;
  batches_.fetch_add(1, std::memory_order_relaxed);
  Push(item);
}

void RingBufferReader::ThreadMain() {
  struct epoll_event events[4];
  int fail_err = 0;
  for (;;) {
    // Idle, it still looks every max_latency_ms_: the kernel side wakes it
    // only once per batch of records (BPF_RB_NO_WAKEUP in between).
    int timeout = max_latency_ms_ > 0 ? max_latency_ms_ : -1;
    if (batch_count_ > 0) {
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline_) {
        timeout = 0;
      } else {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - now).count();
        timeout = (int)((us + 999) / 1000);
      }
    }
    int n = stop_requested_.load() ? 0 : epoll_wait(epfd_, events, 4, timeout);
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
    // Take flush requests *before* consuming: everything committed before
    // flush() was called is then guaranteed to be seen by this consume pass.
    std::vector<uint64_t> flushes;
    {
      std::lock_guard<std::mutex> lock(mu_);
      flushes.swap(flush_requests_);
    }
    if (!fail_err) {
      int r = ring_buffer__consume(rb_);
      if (r < 0) fail_err = -r;
    }
    if (!flushes.empty() || stopping || fail_err ||
        (batch_count_ > 0 && std::chrono::steady_clock::now() >= deadline_))
      DeliverBatch();
    for (uint64_t id : flushes) {
      Item* item = new Item();
      item->kind = Item::kFlushDone;
      item->flush_id = id;
      Push(item);
    }
    if (fail_err) {
      // Stop consuming; CallJs rejects pending and later flushes.
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
  batch_count_ = 0;
}

// ---- main thread (TSFN) ----------------------------------------------------

void RingBufferReader::CallJs(Napi::Env env, Napi::Function cb, RingBufferReader* self, Item* item) {
  if (!item) return;
  if ((napi_env)env == nullptr || self == nullptr || self->addon_->tearing_down) {  // TSFN torn down with items queued
    free(item->data);
    delete item;
    return;
  }
  self->queued_.fetch_sub(1);
  try {
    switch (item->kind) {
      case Item::kBatch: {
        // Copied into the one Buffer the callback always gets (its first count * recordSize bytes).
        if (self->js_batch_.IsEmpty())
          self->js_batch_ = Napi::Reference<Napi::Buffer<uint8_t>>::New(Napi::Buffer<uint8_t>::New(env, self->max_batch_ * self->record_size_), 1);
        Napi::Buffer<uint8_t> buf = self->js_batch_.Value();
        memcpy(buf.Data(), item->data, item->count * self->record_size_);
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
        Napi::Error e = ErrnoError(env, item->err, "ring buffer reader for map '" + self->map_name_ + "' failed");
        self->failure_ = Napi::Persistent(e.Value());
        // Reject pending flushes: the reader no longer consumes.
        auto pending = std::move(self->pending_flushes_);
        self->pending_flushes_.clear();
        for (auto& kv : pending) kv.second.Reject(e.Value());
        if (!self->on_error_.IsEmpty()) self->on_error_.Call({e.Value()});
        break;
      }
    }
  } catch (const Napi::Error& e) {
    // A JS callback threw: surface it as an uncaught exception, like any event callback.
    napi_fatal_exception(env, e.Value());
  }
  free(item->data);
  delete item;
}

void RingBufferReader::OnTsfnFinalize(Napi::Env env, void* unused, RingBufferReader* self) {
  self->tsfn_alive_ = false;
  if (self->addon_->tearing_down) {  // N-API is going away: touch no JS values
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
