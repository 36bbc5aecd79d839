// flowtel_native: thin node-addon-api layer over libbpf.
// Exports: BpfObject, RingBufferReader, PacketSocket, NetlinkSocket, libbpfVersion, numPossibleCpus,
// vmlinuxHasType, bumpMemlockRlimit, libbpfLog. Typed in src/native/raw.d.ts.
#include "addon.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <sys/resource.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "bpf_object.h"
#include "errors.h"
#include "libbpf_log.h"
#include "netlink_socket.h"
#include "packet_socket.h"
#include "ringbuf_reader.h"

namespace flowtel {

AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

Napi::Buffer<uint8_t> OwnedBuffer(Napi::Env env, uint8_t* data, size_t len, size_t capacity) {
  if (len == 0) {
    free(data);
    return Napi::Buffer<uint8_t>::New(env, 0);
  }
  int64_t cap = (int64_t)capacity;
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::NewOrCopy(
      env, data, len, [cap](Napi::Env e, uint8_t* p) {
        free(p);
        Napi::MemoryManagement::AdjustExternalMemory(e, -cap);
      });
  Napi::MemoryManagement::AdjustExternalMemory(env, cap);
  return buf;
}

namespace {

// vmlinux BTF, loaded once per process and never freed.
std::once_flag g_vmlinux_once;
struct btf* g_vmlinux = nullptr;
int g_vmlinux_err = 0;

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  const char* s = libbpf_version_string();
  return Napi::String::New(info.Env(), s ? s : "");
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), n, "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), n);
}

Napi::Value VmlinuxHasType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  std::string kind = ArgString(info, 1, "kind");
  std::vector<int> kinds;
  if (kind == "typedef") kinds = {BTF_KIND_TYPEDEF};
  else if (kind == "struct") kinds = {BTF_KIND_STRUCT};
  else if (kind == "union") kinds = {BTF_KIND_UNION};
  else if (kind == "func") kinds = {BTF_KIND_FUNC};
  else if (kind == "enum") kinds = {BTF_KIND_ENUM, BTF_KIND_ENUM64};
  else if (kind == "var") kinds = {BTF_KIND_VAR};
  else
    ThrowCode(env, "ERR_INVALID_ARG_VALUE",
              "vmlinuxHasType: kind must be one of typedef, struct, union, func, enum, var (got '" + kind + "')");
  std::call_once(g_vmlinux_once, [] {
    errno = 0;
    g_vmlinux = btf__load_vmlinux_btf();
    if (!g_vmlinux) g_vmlinux_err = errno ? errno : ENOENT;
  });
  if (!g_vmlinux)
    ThrowErrno(env, g_vmlinux_err,
               "cannot load kernel BTF (/sys/kernel/btf/vmlinux); a kernel with CONFIG_DEBUG_INFO_BTF=y is required");
  for (int k : kinds)
    if (btf__find_by_name_kind(g_vmlinux, name.c_str(), k) > 0) return Napi::Boolean::New(env, true);
  return Napi::Boolean::New(env, false);
}

// Returns true if the limit was raised (or already infinite). Failure is not an
// error: kernels >= 5.11 account BPF memory to memcg and ignore RLIMIT_MEMLOCK.
Napi::Value BumpMemlockRlimit(const Napi::CallbackInfo& info) {
  struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};
  return Napi::Boolean::New(info.Env(), setrlimit(RLIMIT_MEMLOCK, &r) == 0);
}

// libbpfLog(maxLines?) -> {level: 'warn'|'info'|'debug', message: string}[]
// The most recent captured libbpf lines (for logging warnings after a successful load).
Napi::Value LibbpfLog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t max = 200;
  if (info.Length() > 0 && !info[0].IsUndefined()) max = ArgUint32(info, 0, "maxLines");
  std::vector<LogLine> lines = LibbpfLogSince(0, max);
  Napi::Array out = Napi::Array::New(env, lines.size());
  for (size_t i = 0; i < lines.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    const char* lvl = lines[i].level == LIBBPF_WARN ? "warn" : lines[i].level == LIBBPF_INFO ? "info" : "debug";
    o.Set("level", lvl);
    o.Set("message", lines[i].text);
    out.Set((uint32_t)i, o);
  }
  return out;
}

void Teardown(AddonData* data) {
  data->tearing_down = true;
  std::set<RingBufferReader*> readers = data->readers;
  for (RingBufferReader* r : readers) r->StopForTeardown();
}

}  // namespace

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  static std::once_flag log_once;
  std::call_once(log_once, InstallLibbpfLogger);

  AddonData* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  // Registered after N-API's own per-env hook, so it runs before it: reader
  // threads are joined while their ThreadSafeFunctions still exist.
  napi_add_env_cleanup_hook(env, [](void* arg) { Teardown(static_cast<AddonData*>(arg)); }, data);

  Napi::Function bpf_object = BpfObject::Init(env);
  data->bpf_object_ctor = Napi::Persistent(bpf_object);
  Napi::Function reader = RingBufferReader::Init(env);
  data->reader_ctor = Napi::Persistent(reader);

  exports.Set("BpfObject", bpf_object);
  exports.Set("RingBufferReader", reader);
  exports.Set("PacketSocket", PacketSocket::Init(env));
  exports.Set("NetlinkSocket", NetlinkSocket::Init(env));
  exports.Set("libbpfVersion", Napi::Function::New<LibbpfVersion>(env, "libbpfVersion"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
  exports.Set("vmlinuxHasType", Napi::Function::New<VmlinuxHasType>(env, "vmlinuxHasType"));
  exports.Set("bumpMemlockRlimit", Napi::Function::New<BumpMemlockRlimit>(env, "bumpMemlockRlimit"));
  exports.Set("libbpfLog", Napi::Function::New<LibbpfLog>(env, "libbpfLog"));
  return exports;
}

}  // namespace flowtel

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return flowtel::InitAddon(env, exports); }

NODE_API_MODULE(flowtel_native, InitModule)
