// NetlinkSocket: one AF_NETLINK socket (any protocol, e.g. NETLINK_NETFILTER
// for conntrack), created in a given network namespace, non-blocking.
// send() writes one request to the kernel; recv() returns one datagram or null
// when none is queued. Messages are built and parsed in TypeScript
// (src/native/netlink-socket.ts, src/processors/netenrich/conntrack/).
#pragma once

#include <napi.h>

#include <cstdint>
#include <vector>

namespace flowtel {

class NetlinkSocket : public Napi::ObjectWrap<NetlinkSocket> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit NetlinkSocket(const Napi::CallbackInfo& info);
  ~NetlinkSocket() override;

 private:
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Recv(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);
  Napi::Value IsClosed(const Napi::CallbackInfo& info);
  Napi::Value PortId(const Napi::CallbackInfo& info);

  int fd_ = -1;
  uint32_t port_id_ = 0;
  std::vector<uint8_t> buf_;
};

}  // namespace flowtel
