// Error helpers: every error thrown by the addon is a plain Error with
//   message  human readable, names the object/file and the errno
//   errno    errno name as a string ("ENOENT") when a syscall/libbpf call failed
//   code     same as errno, or an ERR_BPF_* code for argument/state errors
// The TS wrapper (src/native/bpf.ts) turns these into BpfError.
#pragma once

#include <napi.h>
#include <string>

namespace flowtel {

// "ENOENT" (falls back to "E<n>" for unknown numbers). err may be negative.
std::string ErrnoName(int err);
// "ENOENT (No such file or directory)"
std::string ErrnoDesc(int err);

// Error for a failed call: "<what>: ENOENT (No such file or directory)".
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what);
// Error for bad arguments/state. code is e.g. "ERR_BPF_NOT_FOUND".
Napi::Error CodeError(Napi::Env env, const char* code, const std::string& msg);

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what);
[[noreturn]] void ThrowCode(Napi::Env env, const char* code, const std::string& msg);

// Argument helpers (throw TypeError with ERR_INVALID_ARG_TYPE).
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace flowtel
