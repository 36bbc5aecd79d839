#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <set>

namespace flowtel {

class RingBufferReader;

// Per-environment data (main thread or a worker each get their own).
struct AddonData {
  Napi::FunctionReference bpf_object_ctor;
  Napi::FunctionReference reader_ctor;
  std::set<RingBufferReader*> readers;  // live readers, stopped at env teardown
  bool tearing_down = false;
};

AddonData* GetAddonData(Napi::Env env);

// Hands a malloc()ed block to JS as a Buffer of `len` bytes; the Buffer owns it
// (free() in its finalizer) and the allocation is reported to V8 as external memory.
Napi::Buffer<uint8_t> OwnedBuffer(Napi::Env env, uint8_t* data, size_t len, size_t capacity);

}  // namespace flowtel
