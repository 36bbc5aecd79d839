// BpfObject: one ObjectWrap per `struct bpf_object*` (an opened .bpf.o file).
#pragma once

#include <napi.h>

#include <map>
#include <set>
#include <string>

struct bpf_object;
struct bpf_program;
struct bpf_map;
struct bpf_link;

namespace flowtel {

class RingBufferReader;
class IteratorWalk;

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;

  // For RingBufferReader.
  bpf_map* RequireLoadedMap(Napi::Env env, const std::string& name);
  const std::string& path() const { return path_; }
  void AddReader(RingBufferReader* r) { readers_.insert(r); }
  void RemoveReader(RingBufferReader* r) { readers_.erase(r); }
  // For IteratorWalk: walks in progress, stopped when the object closes.
  void AddWalk(IteratorWalk* w) { walks_.insert(w); }
  void RemoveWalk(IteratorWalk* w) { walks_.erase(w); }
  // For PacketSocket (SO_ATTACH_BPF): the fd of a loaded program. The socket
  // holds its own reference to the program, so it outlives close().
  int RequireLoadedProgramFd(Napi::Env env, const std::string& name);

 private:
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  void SetGlobal(const Napi::CallbackInfo& info);
  void SetMapMaxEntries(const Napi::CallbackInfo& info);
  void SetAutoload(const Napi::CallbackInfo& info);
  void Load(const Napi::CallbackInfo& info);
  void Attach(const Napi::CallbackInfo& info);
  void AttachCgroup(const Napi::CallbackInfo& info);
  void AttachIter(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  void DetachAll(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);
  Napi::Value IsLoaded(const Napi::CallbackInfo& info);
  Napi::Value IsClosed(const Napi::CallbackInfo& info);
  Napi::Value ReadIterator(const Napi::CallbackInfo& info);
  Napi::Value DrainIterator(const Napi::CallbackInfo& info);
  Napi::Value WalkIterator(const Napi::CallbackInfo& info);
  Napi::Value MapLookup(const Napi::CallbackInfo& info);
  void MapUpdate(const Napi::CallbackInfo& info);
  Napi::Value MapDelete(const Napi::CallbackInfo& info);
  Napi::Value MapDump(const Napi::CallbackInfo& info);
  Napi::Value MapMemory(const Napi::CallbackInfo& info);
  Napi::Value ProgramStats(const Napi::CallbackInfo& info);

  void CloseImpl();
  void DetachAllImpl();
  void RequireOpen(Napi::Env env) const;
  void RequireNotLoaded(Napi::Env env, const char* what) const;
  void RequireLoaded(Napi::Env env, const char* what) const;
  bpf_program* FindProgram(Napi::Env env, const std::string& name) const;
  bpf_map* FindMap(Napi::Env env, const std::string& name) const;
  std::string Where() const;  // "'<path>'" for messages
  int IterLinkFd(Napi::Env env, const std::string& prog, const char* what);
  // A BPF_F_MMAPABLE array map as user space maps it: its elements are
  // value_size rounded up to 8 bytes apart.
  struct MmapableArray {
    bpf_map* map;
    size_t stride;      // bytes from one element to the next
    uint32_t capacity;  // max_entries
    size_t mapped;      // the whole array, in whole pages
  };
  // The loaded map `name`, or ERR_BPF_STATE ("<what>: '<name>' is not an array map with BPF_F_MMAPABLE").
  MmapableArray RequireMmapableArray(Napi::Env env, const std::string& name, const std::string& what);
  struct ChunkedIterator {
    int link_fd;
    bpf_map* chunk;
    bpf_map* count;
    size_t record_size;
    uint32_t capacity;
    size_t mapped;  // the chunk map's size, in whole pages
  };
  // Checks the maps of a chunked iterator (drainIterator, walkIterator).
  ChunkedIterator RequireChunkedIterator(Napi::Env env, const std::string& prog, const std::string& chunk_map,
                                         const std::string& count_map, const char* what);

  bpf_object* obj_ = nullptr;
  std::string path_;
  bool loaded_ = false;
  bool closed_ = false;
  std::map<std::string, bpf_link*> links_;  // program name -> link
  std::set<RingBufferReader*> readers_;
  std::set<IteratorWalk*> walks_;
};

}  // namespace flowtel
