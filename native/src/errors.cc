#include "errors.h"

#include <cstring>

namespace flowtel {

std::string ErrnoName(int err) {
  if (err < 0) err = -err;
  const char* n = strerrorname_np(err);
  if (n) return n;
  switch (err) {  // kernel-internal values that leak through bpf(2)
    case 512: return "ERESTARTSYS";
    case 524: return "ENOTSUPP";
    default: return "E" + std::to_string(err);
  }
}

std::string ErrnoDesc(int err) {
  if (err < 0) err = -err;
  std::string name = ErrnoName(err);
  if (err == 524) return name + " (Operation not supported by the kernel)";
  return name + " (" + strerror(err) + ")";
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  if (err < 0) err = -err;
  Napi::Error e = Napi::Error::New(env, what + ": " + ErrnoDesc(err));
  std::string name = ErrnoName(err);
  e.Set("errno", Napi::String::New(env, name));
  e.Set("code", Napi::String::New(env, name));
  return e;
}

Napi::Error CodeError(Napi::Env env, const char* code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& what) {
  throw ErrnoError(env, err, what);
}

void ThrowCode(Napi::Env env, const char* code, const std::string& msg) {
  throw CodeError(env, code, msg);
}

static Napi::TypeError ArgTypeError(Napi::Env env, size_t i, const char* name, const char* want) {
  Napi::TypeError e = Napi::TypeError::New(
      env, std::string("argument ") + std::to_string(i) + " (" + name + ") must be " + want);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  return e;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) throw ArgTypeError(info.Env(), i, name, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer()) throw ArgTypeError(info.Env(), i, name, "a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw ArgTypeError(info.Env(), i, name, "a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d)
    throw ArgTypeError(info.Env(), i, name, "an integer in [0, 2^32)");
  return (uint32_t)d;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBoolean()) throw ArgTypeError(info.Env(), i, name, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

}  // namespace flowtel
