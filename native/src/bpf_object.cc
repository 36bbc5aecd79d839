#include "bpf_object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "libbpf_log.h"
#include "iterator_walk.h"
#include "ringbuf_reader.h"

namespace flowtel {

namespace {

constexpr size_t kLoadLogLines = 40;

bool IsPerCpu(enum bpf_map_type t) {
  switch (t) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

// Size of the value buffer user space passes for lookups/updates.
size_t UserValueSize(bpf_map* map) {
  size_t vs = bpf_map__value_size(map);
  if (!IsPerCpu(bpf_map__type(map))) return vs;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu < 1) ncpu = 1;
  return ((vs + 7) & ~(size_t)7) * (size_t)ncpu;
}

std::string LogTail(uint64_t mark) {
  std::vector<LogLine> lines = LibbpfLogSince(mark, kLoadLogLines);
  if (lines.empty()) return "";
  std::string out = "\n--- libbpf log (last " + std::to_string(lines.size()) + " lines) ---";
  for (auto& l : lines) {
    out += "\n";
    out += l.text;
  }
  return out;
}

}  // namespace

Napi::Function BpfObject::Init(Napi::Env env) {
  return DefineClass(
      env, "BpfObject",
      {
          InstanceMethod<&BpfObject::Programs>("programs"),
          InstanceMethod<&BpfObject::Maps>("maps"),
          InstanceMethod<&BpfObject::SetGlobal>("setGlobal"),
          InstanceMethod<&BpfObject::SetMapMaxEntries>("setMapMaxEntries"),
          InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
          InstanceMethod<&BpfObject::Load>("load"),
          InstanceMethod<&BpfObject::Attach>("attach"),
          InstanceMethod<&BpfObject::AttachCgroup>("attachCgroup"),
          InstanceMethod<&BpfObject::AttachIter>("attachIter"),
          InstanceMethod<&BpfObject::Detach>("detach"),
          InstanceMethod<&BpfObject::DetachAll>("detachAll"),
          InstanceMethod<&BpfObject::Close>("close"),
          InstanceMethod<&BpfObject::IsLoaded>("isLoaded"),
          InstanceMethod<&BpfObject::IsClosed>("isClosed"),
          InstanceMethod<&BpfObject::ReadIterator>("readIterator"),
          InstanceMethod<&BpfObject::DrainIterator>("drainIterator"),
          InstanceMethod<&BpfObject::WalkIterator>("walkIterator"),
          InstanceMethod<&BpfObject::MapLookup>("mapLookup"),
          InstanceMethod<&BpfObject::MapUpdate>("mapUpdate"),
          InstanceMethod<&BpfObject::MapDelete>("mapDelete"),
          InstanceMethod<&BpfObject::MapDump>("mapDump"),
          InstanceMethod<&BpfObject::MapMemory>("mapMemory"),
          InstanceMethod<&BpfObject::ProgramStats>("programStats"),
      });
}

BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  Napi::Env env = info.Env();
  path_ = ArgString(info, 0, "path");
  uint64_t mark = LibbpfLogMark();
  errno = 0;
  obj_ = bpf_object__open_file(path_.c_str(), nullptr);
  if (!obj_) {
    int err = errno ? errno : EINVAL;
    closed_ = true;
    std::string msg = "cannot open BPF object file '" + path_ + "'";
    Napi::Error e = ErrnoError(env, err, msg);
    if (err != ENOENT && err != EACCES) {
      std::string tail = LogTail(mark);
      if (!tail.empty()) e.Set("message", Napi::String::New(env, e.Message() + tail));
    }
    e.Set("path", Napi::String::New(env, path_));
    throw e;
  }
}

BpfObject::~BpfObject() { CloseImpl(); }

std::string BpfObject::Where() const { return "'" + path_ + "'"; }

void BpfObject::RequireOpen(Napi::Env env) const {
  if (closed_) ThrowCode(env, "ERR_BPF_CLOSED", "BPF object " + Where() + " is closed");
}

void BpfObject::RequireNotLoaded(Napi::Env env, const char* what) const {
  RequireOpen(env);
  if (loaded_)
    ThrowCode(env, "ERR_BPF_STATE", std::string(what) + " must be called before load() (" + Where() + ")");
}

void BpfObject::RequireLoaded(Napi::Env env, const char* what) const {
  RequireOpen(env);
  if (!loaded_)
    ThrowCode(env, "ERR_BPF_STATE", std::string(what) + " needs a loaded object; call load() first (" + Where() + ")");
}

bpf_program* BpfObject::FindProgram(Napi::Env env, const std::string& name) const {
  RequireOpen(env);
  bpf_program* p = bpf_object__find_program_by_name(obj_, name.c_str());
  if (!p) {
    std::string known;
    bpf_program* it;
    bpf_object__for_each_program(it, obj_) {
      if (!known.empty()) known += ", ";
      known += bpf_program__name(it);
    }
    ThrowCode(env, "ERR_BPF_NOT_FOUND",
              "no BPF program named '" + name + "' in " + Where() + " (programs: " + known + ")");
  }
  return p;
}

bpf_map* BpfObject::FindMap(Napi::Env env, const std::string& name) const {
  RequireOpen(env);
  bpf_map* m = bpf_object__find_map_by_name(obj_, name.c_str());
  if (!m) {
    std::string known;
    bpf_map* it;
    bpf_object__for_each_map(it, obj_) {
      if (!known.empty()) known += ", ";
      known += bpf_map__name(it);
    }
    ThrowCode(env, "ERR_BPF_NOT_FOUND", "no BPF map named '" + name + "' in " + Where() + " (maps: " + known + ")");
  }
  return m;
}

bpf_map* BpfObject::RequireLoadedMap(Napi::Env env, const std::string& name) {
  bpf_map* m = FindMap(env, name);
  RequireLoaded(env, ("map '" + name + "'").c_str());
  return m;
}

int BpfObject::RequireLoadedProgramFd(Napi::Env env, const std::string& name) {
  bpf_program* p = FindProgram(env, name);
  RequireLoaded(env, ("program '" + name + "'").c_str());
  int fd = bpf_program__fd(p);
  if (fd < 0) ThrowCode(env, "ERR_BPF_STATE", "program '" + name + "' in " + Where() + " is not loaded (autoload off?)");
  return fd;
}

Napi::Value BpfObject::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_program* p;
  bpf_object__for_each_program(p, obj_) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_program__name(p));
    o.Set("section", bpf_program__section_name(p));
    o.Set("type", Napi::Number::New(env, bpf_program__type(p)));
    o.Set("autoload", Napi::Boolean::New(env, bpf_program__autoload(p)));
    o.Set("attached", Napi::Boolean::New(env, links_.count(bpf_program__name(p)) > 0));
    out.Set(i++, o);
  }
  return out;
}

Napi::Value BpfObject::Maps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_map* m;
  bpf_object__for_each_map(m, obj_) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_map__name(m));
    o.Set("type", Napi::Number::New(env, bpf_map__type(m)));
    o.Set("keySize", Napi::Number::New(env, bpf_map__key_size(m)));
    o.Set("valueSize", Napi::Number::New(env, bpf_map__value_size(m)));
    o.Set("maxEntries", Napi::Number::New(env, bpf_map__max_entries(m)));
    o.Set("perCpu", Napi::Boolean::New(env, IsPerCpu(bpf_map__type(m))));
    o.Set("internal", Napi::Boolean::New(env, bpf_map__is_internal(m)));
    out.Set(i++, o);
  }
  return out;
}

// Finds global variable `name` in the object's BTF datasecs and writes `value`
// into the initial image of the matching internal map (.rodata/.data/.bss).
void BpfObject::SetGlobal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  Napi::Buffer<uint8_t> value = ArgBuffer(info, 1, "value");
  RequireNotLoaded(env, "setGlobal()");

  const struct btf* btf = bpf_object__btf(obj_);
  if (!btf) ThrowCode(env, "ERR_BPF_NO_BTF", "BPF object " + Where() + " has no BTF; compile it with -g");

  __u32 n = btf__type_cnt(btf);
  for (__u32 id = 1; id < n; id++) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    if (!btf_is_datasec(t)) continue;
    const char* sec_name = btf__name_by_offset(btf, t->name_off);
    if (!sec_name) continue;
    const struct btf_var_secinfo* vs = btf_var_secinfos(t);
    for (__u16 j = 0; j < btf_vlen(t); j++, vs++) {
      const struct btf_type* var = btf__type_by_id(btf, vs->type);
      if (!var || !btf_is_var(var)) continue;
      const char* var_name = btf__name_by_offset(btf, var->name_off);
      if (!var_name || name != var_name) continue;

      std::string sec(sec_name);
      if (vs->size != value.Length())
        ThrowCode(env, "ERR_BPF_BAD_SIZE",
                  "setGlobal('" + name + "'): variable in " + sec + " is " + std::to_string(vs->size) +
                      " bytes, value is " + std::to_string(value.Length()) + " bytes (" + Where() + ")");
      // Internal maps are named "<obj prefix>.rodata" or, for custom sections, the section name.
      bpf_map* target = nullptr;
      bpf_map* m;
      bpf_object__for_each_map(m, obj_) {
        if (!bpf_map__is_internal(m)) continue;
        std::string mn = bpf_map__name(m);
        if (mn == sec) { target = m; break; }
        if (mn.size() > sec.size() && mn.compare(mn.size() - sec.size(), sec.size(), sec) == 0 &&
            mn.find('.') == mn.size() - sec.size())
          target = m;
      }
      if (!target)
        ThrowCode(env, "ERR_BPF_NOT_FOUND",
                  "setGlobal('" + name + "'): no map backs section " + sec + " in " + Where());
      size_t size = 0;
      const void* init = bpf_map__initial_value(target, &size);
      if (!init || (size_t)vs->offset + vs->size > size)
        ThrowCode(env, "ERR_BPF_STATE",
                  "setGlobal('" + name + "'): section " + sec + " has no writable initial image (" + Where() + ")");
      std::vector<uint8_t> image((const uint8_t*)init, (const uint8_t*)init + size);
      memcpy(image.data() + vs->offset, value.Data(), vs->size);
      int err = bpf_map__set_initial_value(target, image.data(), image.size());
      if (err) ThrowErrno(env, err, "setGlobal('" + name + "') in " + Where());
      return;
    }
  }
  ThrowCode(env, "ERR_BPF_NOT_FOUND",
            "setGlobal: no global variable named '" + name + "' in " + Where() +
                " (only non-static globals in .rodata/.data/.bss are visible; a const needs 'volatile')");
}

void BpfObject::SetMapMaxEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "map");
  uint32_t n = ArgUint32(info, 1, "maxEntries");
  bpf_map* m = FindMap(env, name);
  RequireNotLoaded(env, "setMapMaxEntries()");
  int err = bpf_map__set_max_entries(m, n);
  if (err) ThrowErrno(env, err, "setMapMaxEntries('" + name + "', " + std::to_string(n) + ") in " + Where());
}

void BpfObject::SetAutoload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  bool on = ArgBool(info, 1, "autoload");
  bpf_program* p = FindProgram(env, name);
  RequireNotLoaded(env, "setAutoload()");
  int err = bpf_program__set_autoload(p, on);
  if (err) ThrowErrno(env, err, "setAutoload('" + name + "') in " + Where());
}

void BpfObject::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "load()");
  uint64_t mark = LibbpfLogMark();
  // The verifier gives up with EAGAIN when a signal arrives during a long
  // verification (libbpf retries a few times only): a profiler's SIGPROF
  // every few hundred µs made loads fail. Signals wait for this thread until
  // the load is done (process-wide ones go to another thread meanwhile).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int err = bpf_object__load(obj_);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err) {
    if (err > 0) err = -err;
    std::string msg = "failed to load BPF object " + Where();
    Napi::Error e = ErrnoError(env, err, msg);
    std::string full = e.Message();
    if (err == -EPERM)
      full += "\nhint: loading BPF programs needs CAP_BPF + CAP_PERFMON (plus CAP_NET_ADMIN for "
              "cgroup/network programs) or root; also check kernel.unprivileged_bpf_disabled and "
              "RLIMIT_MEMLOCK on kernels without memcg accounting";
    full += LogTail(mark);
    e.Set("message", Napi::String::New(env, full));
    e.Set("path", Napi::String::New(env, path_));
    throw e;
  }
  loaded_ = true;
}

void BpfObject::Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  bpf_program* p = FindProgram(env, name);
  RequireLoaded(env, "attach()");
  if (links_.count(name)) ThrowCode(env, "ERR_BPF_STATE", "program '" + name + "' is already attached (" + Where() + ")");
  if (bpf_program__fd(p) < 0)
    ThrowCode(env, "ERR_BPF_STATE", "program '" + name + "' was not loaded (autoload off?) (" + Where() + ")");
  uint64_t mark = LibbpfLogMark();
  errno = 0;
  bpf_link* link = bpf_program__attach(p);
  if (!link) {
    int err = errno ? errno : EINVAL;
    Napi::Error e = ErrnoError(env, err,
                               "cannot attach program '" + name + "' (section " +
                                   bpf_program__section_name(p) + ") in " + Where());
    e.Set("message", Napi::String::New(env, e.Message() + LogTail(mark)));
    throw e;
  }
  links_[name] = link;
}

void BpfObject::AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  std::string cg = ArgString(info, 1, "cgroupPath");
  bpf_program* p = FindProgram(env, name);
  RequireLoaded(env, "attachCgroup()");
  if (links_.count(name)) ThrowCode(env, "ERR_BPF_STATE", "program '" + name + "' is already attached (" + Where() + ")");
  if (bpf_program__fd(p) < 0)
    ThrowCode(env, "ERR_BPF_STATE", "program '" + name + "' was not loaded (autoload off?) (" + Where() + ")");
  int fd = open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "cannot open cgroup v2 directory '" + cg + "'");
  uint64_t mark = LibbpfLogMark();
  errno = 0;
  bpf_link* link = bpf_program__attach_cgroup(p, fd);
  int err = errno ? errno : EINVAL;
  close(fd);
  if (!link) {
    Napi::Error e = ErrnoError(env, err, "cannot attach program '" + name + "' to cgroup '" + cg + "' (" + Where() + ")");
    e.Set("message", Napi::String::New(env, e.Message() + LogTail(mark)));
    throw e;
  }
  links_[name] = link;
}

// attachIter(prog, map?): an iter/* program; with `map`, a map iterator
// (iter/bpf_map_elem, iter/bpf_sk_storage_map) over that map.
void BpfObject::AttachIter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  bool with_map = info.Length() > 1 && !info[1].IsUndefined();
  std::string map_name = with_map ? ArgString(info, 1, "map") : "";
  bpf_program* p = FindProgram(env, name);
  bpf_map* m = with_map ? FindMap(env, map_name) : nullptr;
  RequireLoaded(env, "attachIter()");
  if (links_.count(name)) ThrowCode(env, "ERR_BPF_STATE", "program '" + name + "' is already attached (" + Where() + ")");
  if (bpf_program__fd(p) < 0)
    ThrowCode(env, "ERR_BPF_STATE", "program '" + name + "' was not loaded (autoload off?) (" + Where() + ")");
  union bpf_iter_link_info linfo;
  memset(&linfo, 0, sizeof(linfo));
  LIBBPF_OPTS(bpf_iter_attach_opts, opts);
  if (m) {
    linfo.map.map_fd = bpf_map__fd(m);
    opts.link_info = &linfo;
    opts.link_info_len = sizeof(linfo);
  }
  uint64_t mark = LibbpfLogMark();
  errno = 0;
  bpf_link* link = bpf_program__attach_iter(p, &opts);
  if (!link) {
    int err = errno ? errno : EINVAL;
    Napi::Error e = ErrnoError(env, err,
                               "cannot attach iterator '" + name + "'" + (m ? " over map '" + map_name + "'" : "") +
                                   " (section " + bpf_program__section_name(p) + ") in " + Where());
    e.Set("message", Napi::String::New(env, e.Message() + LogTail(mark)));
    throw e;
  }
  links_[name] = link;
}

Napi::Value BpfObject::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  FindProgram(env, name);
  auto it = links_.find(name);
  if (it == links_.end()) return Napi::Boolean::New(env, false);
  bpf_link__destroy(it->second);
  links_.erase(it);
  return Napi::Boolean::New(env, true);
}

void BpfObject::DetachAllImpl() {
  for (auto& kv : links_) bpf_link__destroy(kv.second);
  links_.clear();
}

void BpfObject::DetachAll(const Napi::CallbackInfo& info) {
  if (closed_) return;
  DetachAllImpl();
}

void BpfObject::CloseImpl() {
  if (closed_) return;
  std::set<RingBufferReader*> readers;
  readers.swap(readers_);
  for (RingBufferReader* r : readers) r->StopFromOwner();
  std::set<IteratorWalk*> walks;
  walks.swap(walks_);
  for (IteratorWalk* w : walks) w->AbortFromOwner();  // before the maps and links go
  DetachAllImpl();
  bpf_object__close(obj_);
  obj_ = nullptr;
  closed_ = true;
  loaded_ = false;
}

void BpfObject::Close(const Napi::CallbackInfo& info) { CloseImpl(); }

Napi::Value BpfObject::IsLoaded(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), loaded_); }
Napi::Value BpfObject::IsClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed_); }

namespace {

// Creates an iterator fd on a short-lived thread that first joins the network
// namespace at ns_path: per-netns iterators (iter/tcp, iter/udp, ...) walk the
// namespace of the thread that creates them. setns() only affects that thread,
// so the JS thread never changes namespace. Returns fd or -errno; *what says
// which step failed.
int IterCreateInNetns(int link_fd, const std::string& ns_path, const char** what) {
  int result = -EINVAL;
  const char* step = "";
  std::thread t([&] {
    int ns = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      result = -errno;
      step = "cannot open network namespace";
      return;
    }
    if (setns(ns, CLONE_NEWNET) != 0) {
      result = -errno;
      step = "setns(CLONE_NEWNET) failed for";
      close(ns);
      return;
    }
    close(ns);
    int fd = bpf_iter_create(link_fd);
    if (fd < 0) {
      result = -errno;
      step = "bpf_iter_create failed in network namespace";
      return;
    }
    result = fd;
  });
  t.join();
  *what = step;
  return result;
}

}  // namespace

// readIterator(prog, netnsPath?)
Napi::Value BpfObject::ReadIterator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  bool in_ns = info.Length() > 1 && !info[1].IsUndefined();
  std::string ns_path = in_ns ? ArgString(info, 1, "netnsPath") : "";
  int link_fd = IterLinkFd(env, name, "readIterator");
  int fd;
  if (in_ns) {
    const char* what = "";
    fd = IterCreateInNetns(link_fd, ns_path, &what);
    if (fd < 0) ThrowErrno(env, -fd, "readIterator('" + name + "'): " + what + " '" + ns_path + "'");
  } else {
    fd = bpf_iter_create(link_fd);
    if (fd < 0) ThrowErrno(env, errno, "bpf_iter_create for program '" + name + "' in " + Where());
  }

  size_t cap = 64 * 1024, len = 0;
  uint8_t* buf = (uint8_t*)malloc(cap);
  if (!buf) {
    close(fd);
    ThrowErrno(env, ENOMEM, "readIterator('" + name + "')");
  }
  for (;;) {
    if (cap - len < 4096) {
      uint8_t* nb = (uint8_t*)realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        close(fd);
        ThrowErrno(env, ENOMEM, "readIterator('" + name + "')");
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR || errno == EAGAIN) continue;
    int err = errno;
    free(buf);
    close(fd);
    ThrowErrno(env, err, "reading BPF iterator '" + name + "' in " + Where());
  }
  close(fd);
  return OwnedBuffer(env, buf, len, cap);
}

int BpfObject::IterLinkFd(Napi::Env env, const std::string& prog, const char* what) {
  FindProgram(env, prog);
  RequireLoaded(env, (std::string(what) + "()").c_str());
  auto it = links_.find(prog);
  if (it == links_.end())
    ThrowCode(env, "ERR_BPF_STATE", std::string(what) + "('" + prog + "'): program is not attached; call attach() first (" + Where() + ")");
  return bpf_link__fd(it->second);
}

// drainIterator(prog, chunkMap, countMap): one walk of an iterator
// whose program writes its records into `chunkMap` (a BPF_F_MMAPABLE array)
// and their number into `countMap`[0], and returns 1 (retry this object) when
// the chunk is full, which makes read() fail with EAGAIN. Each time, the
// chunk is taken and emptied, and the walk goes on from that object.
// Returns every record, packed, in one Buffer (walkIterator hands them over
// a chunk at a time, on a native thread).
BpfObject::MmapableArray BpfObject::RequireMmapableArray(Napi::Env env, const std::string& name, const std::string& what) {
  MmapableArray a;
  a.map = RequireLoadedMap(env, name);
  if (bpf_map__type(a.map) != BPF_MAP_TYPE_ARRAY || !(bpf_map__map_flags(a.map) & BPF_F_MMAPABLE))
    ThrowCode(env, "ERR_BPF_STATE", what + ": '" + name + "' is not an array map with BPF_F_MMAPABLE (" + Where() + ")");
  a.stride = (bpf_map__value_size(a.map) + 7) / 8 * 8;
  a.capacity = bpf_map__max_entries(a.map);
  const long page = sysconf(_SC_PAGESIZE);
  a.mapped = (a.stride * a.capacity + page - 1) / page * page;
  return a;
}

BpfObject::ChunkedIterator BpfObject::RequireChunkedIterator(Napi::Env env, const std::string& prog, const std::string& chunk_name,
                                                              const std::string& count_name, const char* what) {
  ChunkedIterator it;
  it.link_fd = IterLinkFd(env, prog, what);
  const MmapableArray chunk = RequireMmapableArray(env, chunk_name, what);
  it.chunk = chunk.map;
  it.count = RequireLoadedMap(env, count_name);
  if (bpf_map__type(it.count) != BPF_MAP_TYPE_ARRAY || bpf_map__value_size(it.count) != 4)
    ThrowCode(env, "ERR_BPF_STATE", std::string(what) + ": '" + count_name + "' is not an array map of __u32 (" + Where() + ")");
  it.record_size = chunk.stride;
  it.capacity = chunk.capacity;
  it.mapped = chunk.mapped;
  return it;
}

Napi::Value BpfObject::DrainIterator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  std::string chunk_name = ArgString(info, 1, "chunkMap");
  std::string count_name = ArgString(info, 2, "countMap");
  const ChunkedIterator it = RequireChunkedIterator(env, name, chunk_name, count_name, "drainIterator");
  const int link_fd = it.link_fd;
  bpf_map* chunk = it.chunk;
  bpf_map* count = it.count;
  const size_t rec = it.record_size;
  const uint32_t capacity = it.capacity;
  const size_t mapped = it.mapped;

  // Everything below is released on every way out.
  struct Resources {
    void* mem = MAP_FAILED;
    size_t mapped = 0;
    int fd = -1;
    uint8_t* out = nullptr;
    ~Resources() {
      if (fd >= 0) close(fd);
      if (mem != MAP_FAILED) munmap(mem, mapped);
      free(out);
    }
  } r;
  r.mapped = mapped;
  r.mem = mmap(nullptr, mapped, PROT_READ, MAP_SHARED, bpf_map__fd(chunk), 0);
  if (r.mem == MAP_FAILED) ThrowErrno(env, errno, "drainIterator: mmap of '" + chunk_name + "' in " + Where());
  r.fd = bpf_iter_create(link_fd);
  if (r.fd < 0) ThrowErrno(env, errno, "bpf_iter_create for program '" + name + "' in " + Where());

  size_t cap = 0, len = 0;
  ChunkReader reader(r.fd, bpf_map__fd(count), capacity);
  for (;;) {
    uint32_t got = 0;
    const ChunkReader::Next next = reader.Read(&got);
    size_t bytes = (size_t)got * rec;
    if (bytes > 0) {
      if (len + bytes > cap) {
        size_t ncap = std::max(cap * 2, len + bytes);
        uint8_t* nb = (uint8_t*)realloc(r.out, ncap);
        if (!nb) ThrowErrno(env, ENOMEM, "drainIterator('" + name + "')");
        r.out = nb;
        cap = ncap;
      }
      memcpy(r.out + len, r.mem, bytes);
      len += bytes;
    }
    if (next == ChunkReader::Next::kDone) break;
    if (next == ChunkReader::Next::kFailed)
      ThrowErrno(env, reader.err(), "drainIterator('" + name + "'): " + reader.step() + " in " + Where());
  }
  uint8_t* out = r.out;
  r.out = nullptr;
  if (!out) {
    out = (uint8_t*)malloc(1);
    if (!out) ThrowErrno(env, ENOMEM, "drainIterator('" + name + "')");
    cap = 1;
  }
  return OwnedBuffer(env, out, len, cap);
}

// walkIterator(prog, chunkMap, countMap, onChunk[, sideMap]): the walk of
// drainIterator on a native thread: onChunk(bytes) gets each chunk (a
// Uint8Array valid only during the call) while the kernel fills the next one.
// With sideMap (another BPF_F_MMAPABLE array, its record count in
// countMap[1]), onChunk(bytes, sideBytes) gets the side map's records of the
// same read() too. Returns a Promise of the number of records (both maps);
// rejected with what onChunk threw (the walk stops), with the failed call's
// errno, or with ERR_BPF_CLOSED when the object is closed during the walk.
Napi::Value BpfObject::WalkIterator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "prog");
  std::string chunk_name = ArgString(info, 1, "chunkMap");
  std::string count_name = ArgString(info, 2, "countMap");
  if (info.Length() < 4 || !info[3].IsFunction()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", "walkIterator: onChunk must be a function");
  const ChunkedIterator it = RequireChunkedIterator(env, name, chunk_name, count_name, "walkIterator");
  IteratorWalk::Params p;
  p.prog = name;
  p.where = Where();
  p.count_fd = bpf_map__fd(it.count);
  p.record_size = it.record_size;
  p.capacity = it.capacity;
  p.chunk_mapped = it.mapped;
  bpf_map* side = nullptr;
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    const MmapableArray a = RequireMmapableArray(env, ArgString(info, 4, "sideMap"), "walkIterator");
    if (bpf_map__max_entries(it.count) < 2)
      ThrowCode(env, "ERR_BPF_STATE", "walkIterator: '" + count_name + "' has no second entry for the side map's count (" + Where() + ")");
    side = a.map;
    p.side_record_size = a.stride;
    p.side_capacity = a.capacity;
    p.side_mapped = a.mapped;
  }
  void* mem = mmap(nullptr, it.mapped, PROT_READ, MAP_SHARED, bpf_map__fd(it.chunk), 0);
  if (mem == MAP_FAILED) ThrowErrno(env, errno, "walkIterator: mmap of '" + chunk_name + "' in " + Where());
  p.chunk = (const uint8_t*)mem;
  if (side) {
    void* smem = mmap(nullptr, p.side_mapped, PROT_READ, MAP_SHARED, bpf_map__fd(side), 0);
    if (smem == MAP_FAILED) {
      int err = errno;
      munmap(mem, it.mapped);
      ThrowErrno(env, err, "walkIterator: mmap of the side map in " + Where());
    }
    p.side = (const uint8_t*)smem;
  }
  p.iter_fd = bpf_iter_create(it.link_fd);
  if (p.iter_fd < 0) {
    int err = errno;
    munmap(mem, it.mapped);
    if (p.side) munmap((void*)p.side, p.side_mapped);
    ThrowErrno(env, err, "bpf_iter_create for program '" + name + "' in " + Where());
  }
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  IteratorWalk::Start(env, this, info.This().As<Napi::Object>(), std::move(p), info[3].As<Napi::Function>(), deferred);
  return deferred.Promise();
}

Napi::Value BpfObject::MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "map");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
  bpf_map* m = RequireLoadedMap(env, name);
  if (key.Length() != bpf_map__key_size(m))
    ThrowCode(env, "ERR_BPF_BAD_SIZE", "mapLookup('" + name + "'): key is " + std::to_string(key.Length()) +
                                           " bytes, map key size is " + std::to_string(bpf_map__key_size(m)));
  size_t vs = UserValueSize(m);
  uint8_t* val = (uint8_t*)malloc(vs ? vs : 1);
  if (!val) ThrowErrno(env, ENOMEM, "mapLookup('" + name + "')");
  int err = bpf_map_lookup_elem(bpf_map__fd(m), key.Data(), val);
  if (err) {
    err = errno;
    free(val);
    if (err == ENOENT) return env.Null();
    ThrowErrno(env, err, "mapLookup('" + name + "') in " + Where());
  }
  return OwnedBuffer(env, val, vs, vs);
}

// A read-only view of a BPF_F_MMAPABLE array map's values (max_entries x
// value_size bytes): the program's writes are visible at once, no system call
// per read. The mapping holds its own reference to the map: the Buffer stays
// valid after close(); the finalizer unmaps it.
Napi::Value BpfObject::MapMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "map");
  const MmapableArray a = RequireMmapableArray(env, name, "mapMemory");
  const size_t len = (size_t)bpf_map__value_size(a.map) * a.capacity;
  const size_t mapped = a.mapped;
  void* p = mmap(nullptr, mapped, PROT_READ, MAP_SHARED, bpf_map__fd(a.map), 0);
  if (p == MAP_FAILED) ThrowErrno(env, errno, "mapMemory('" + name + "'): mmap in " + Where());
  return Napi::Buffer<uint8_t>::New(env, (uint8_t*)p, len, [mapped](Napi::Env, uint8_t* data) { munmap(data, mapped); });
}

void BpfObject::MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "map");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
  Napi::Buffer<uint8_t> value = ArgBuffer(info, 2, "value");
  uint32_t flags = 0;
  if (info.Length() > 3 && !info[3].IsUndefined()) flags = ArgUint32(info, 3, "flags");
  bpf_map* m = RequireLoadedMap(env, name);
  if (key.Length() != bpf_map__key_size(m))
    ThrowCode(env, "ERR_BPF_BAD_SIZE", "mapUpdate('" + name + "'): key is " + std::to_string(key.Length()) +
                                           " bytes, map key size is " + std::to_string(bpf_map__key_size(m)));
  size_t vs = UserValueSize(m);
  if (value.Length() != vs)
    ThrowCode(env, "ERR_BPF_BAD_SIZE",
              "mapUpdate('" + name + "'): value is " + std::to_string(value.Length()) + " bytes, expected " +
                  std::to_string(vs) + (IsPerCpu(bpf_map__type(m)) ? " (per-CPU: round_up(valueSize, 8) x possible CPUs)" : ""));
  if (bpf_map_update_elem(bpf_map__fd(m), key.Data(), value.Data(), flags))
    ThrowErrno(env, errno, "mapUpdate('" + name + "') in " + Where());
}

Napi::Value BpfObject::MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "map");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
  bpf_map* m = RequireLoadedMap(env, name);
  if (key.Length() != bpf_map__key_size(m))
    ThrowCode(env, "ERR_BPF_BAD_SIZE", "mapDelete('" + name + "'): key is " + std::to_string(key.Length()) +
                                           " bytes, map key size is " + std::to_string(bpf_map__key_size(m)));
  if (bpf_map_delete_elem(bpf_map__fd(m), key.Data())) {
    int err = errno;
    if (err == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, err, "mapDelete('" + name + "') in " + Where());
  }
  return Napi::Boolean::New(env, true);
}

namespace {

bool BatchCapable(enum bpf_map_type t) {
  switch (t) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      return true;
    default:
      return false;
  }
}

// Returns 0 on success, 1 if batch ops are not supported (caller falls back),
// or a positive errno.
int DumpBatch(int fd, uint32_t max_entries, size_t ks, size_t vs, std::vector<uint8_t>& keys,
              std::vector<uint8_t>& vals, size_t& count) {
  uint32_t chunk = std::min<uint32_t>(std::max<uint32_t>(max_entries, 1), 4096);
  std::vector<uint8_t> in(std::max<size_t>(ks, 8)), out(std::max<size_t>(ks, 8));
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    keys.resize((count + chunk) * ks);
    vals.resize((count + chunk) * vs);
    __u32 n = chunk;
    int ret = bpf_map_lookup_batch(fd, first ? nullptr : in.data(), out.data(), keys.data() + count * ks,
                                   vals.data() + count * vs, &n, &opts);
    int err = ret ? errno : 0;
    if (err && err != ENOENT) {
      if (err == ENOSPC && chunk < max_entries) {  // a hash bucket is larger than chunk
        chunk = std::min<uint32_t>(chunk * 2, max_entries);
        continue;
      }
      if (first && (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == 524)) return 1;
      return err;
    }
    count += n;
    if (err == ENOENT) break;
    in.swap(out);
    first = false;
  }
  keys.resize(count * ks);
  vals.resize(count * vs);
  return 0;
}

int DumpLoop(int fd, size_t ks, size_t vs, std::vector<uint8_t>& keys, std::vector<uint8_t>& vals, size_t& count) {
  std::vector<uint8_t> cur(ks), next(ks), val(vs);
  bool first = true;
  for (;;) {
    if (bpf_map_get_next_key(fd, first ? nullptr : cur.data(), next.data())) {
      if (errno == ENOENT) break;
      return errno;
    }
    first = false;
    cur.swap(next);
    if (bpf_map_lookup_elem(fd, cur.data(), val.data())) {
      if (errno == ENOENT) continue;  // deleted meanwhile
      return errno;
    }
    keys.insert(keys.end(), cur.begin(), cur.end());
    vals.insert(vals.end(), val.begin(), val.end());
    count++;
  }
  return 0;
}

}  // namespace

Napi::Value BpfObject::MapDump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "map");
  bpf_map* m = RequireLoadedMap(env, name);
  int fd = bpf_map__fd(m);
  size_t ks = bpf_map__key_size(m), vs = UserValueSize(m);
  if (ks == 0) ThrowCode(env, "ERR_BPF_UNSUPPORTED", "mapDump('" + name + "'): map has no keys (type " + std::to_string(bpf_map__type(m)) + ")");
  std::vector<uint8_t> keys, vals;
  size_t count = 0;
  int err = 1;
  if (BatchCapable(bpf_map__type(m))) err = DumpBatch(fd, bpf_map__max_entries(m), ks, vs, keys, vals, count);
  if (err == 1) {
    keys.clear();
    vals.clear();
    count = 0;
    err = DumpLoop(fd, ks, vs, keys, vals, count);
  }
  if (err) ThrowErrno(env, err, "mapDump('" + name + "') in " + Where());
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
  out.Set("values", Napi::Buffer<uint8_t>::Copy(env, vals.data(), vals.size()));
  out.Set("count", Napi::Number::New(env, (double)count));
  out.Set("keySize", Napi::Number::New(env, (double)ks));
  out.Set("valueSize", Napi::Number::New(env, (double)vs));
  return out;
}

Napi::Value BpfObject::ProgramStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_program* p;
  bpf_object__for_each_program(p, obj_) {
    int fd = bpf_program__fd(p);
    if (fd < 0) continue;
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    __u32 len = sizeof(pi);
    // libbpf 1.1 has no bpf_prog_get_info_by_fd (added in 1.2); use the generic call.
    if (bpf_obj_get_info_by_fd(fd, &pi, &len))
      ThrowErrno(env, errno, std::string("programStats: bpf_obj_get_info_by_fd for '") + bpf_program__name(p) + "'");
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_program__name(p));
    o.Set("id", Napi::Number::New(env, pi.id));
    o.Set("runTimeNs", Napi::Number::New(env, (double)pi.run_time_ns));
    o.Set("runCnt", Napi::Number::New(env, (double)pi.run_cnt));
    o.Set("recursionMisses", Napi::Number::New(env, (double)pi.recursion_misses));
    o.Set("verifiedInsns", Napi::Number::New(env, pi.verified_insns));
    o.Set("attached", Napi::Boolean::New(env, links_.count(bpf_program__name(p)) > 0));
    out.Set(i++, o);
  }
  return out;
}

}  // namespace flowtel
