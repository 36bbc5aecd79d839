#include "netlink_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "errors.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace flowtel {

namespace {

constexpr size_t kRecvBuffer = 1 << 18;  // larger than any netlink datagram the kernel builds (dumps use <= 32 KiB)

// Creates the socket on a short-lived thread that joins the network namespace
// at ns_path first (empty: the caller's): setns() affects only that thread,
// and the socket keeps the namespace it was created in.
int OpenInNetns(const std::string& ns_path, int protocol, uint32_t groups, int rcvbuf, const char** what) {
  int result = -EINVAL;
  auto open_socket = [&]() {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
    if (fd < 0) {
      *what = "socket(AF_NETLINK)";
      return -errno;
    }
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) {
      int e = errno;
      close(fd);
      *what = "setsockopt(SO_RCVBUF)";
      return -e;
    }
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof addr);
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = groups;
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
      int e = errno;
      close(fd);
      *what = "bind(AF_NETLINK)";
      return -e;
    }
    return fd;
  };
  if (ns_path.empty()) return open_socket();
  std::thread t([&] {
    int ns = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      result = -errno;
      *what = "cannot open network namespace";
      return;
    }
    if (setns(ns, CLONE_NEWNET) != 0) {
      result = -errno;
      *what = "setns(CLONE_NEWNET) failed for network namespace";
      close(ns);
      return;
    }
    close(ns);
    result = open_socket();
  });
  t.join();
  return result;
}

}  // namespace

Napi::Function NetlinkSocket::Init(Napi::Env env) {
  return DefineClass(env, "NetlinkSocket",
                     {
                         InstanceMethod<&NetlinkSocket::Send>("send"),
                         InstanceMethod<&NetlinkSocket::Recv>("recv"),
                         InstanceMethod<&NetlinkSocket::Close>("close"),
                         InstanceMethod<&NetlinkSocket::IsClosed>("isClosed"),
                         InstanceMethod<&NetlinkSocket::PortId>("portId"),
                     });
}

// new NetlinkSocket(protocol, options?: {netnsPath?, groups?, rcvbufBytes?})
NetlinkSocket::NetlinkSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetlinkSocket>(info) {
  Napi::Env env = info.Env();
  uint32_t protocol = ArgUint32(info, 0, "protocol");
  std::string ns_path;
  uint32_t groups = 0;
  int rcvbuf = 0;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object opts = info[1].As<Napi::Object>();
    Napi::Value ns = opts.Get("netnsPath");
    if (!ns.IsUndefined()) {
      if (!ns.IsString()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options.netnsPath must be a string");
      ns_path = ns.As<Napi::String>().Utf8Value();
    }
    Napi::Value g = opts.Get("groups");
    if (!g.IsUndefined()) {
      if (!g.IsNumber()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options.groups must be a number");
      groups = g.As<Napi::Number>().Uint32Value();
    }
    Napi::Value r = opts.Get("rcvbufBytes");
    if (!r.IsUndefined()) {
      if (!r.IsNumber()) ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options.rcvbufBytes must be a number");
      rcvbuf = r.As<Napi::Number>().Int32Value();
    }
  }
  const char* what = "";
  int fd = OpenInNetns(ns_path, (int)protocol, groups, rcvbuf, &what);
  if (fd < 0) ThrowErrno(env, -fd, std::string("NetlinkSocket: ") + what + (ns_path.empty() ? "" : " '" + ns_path + "'"));
  fd_ = fd;
  struct sockaddr_nl local;
  socklen_t len = sizeof local;
  if (getsockname(fd_, reinterpret_cast<struct sockaddr*>(&local), &len) == 0) port_id_ = local.nl_pid;
  buf_.resize(kRecvBuffer);
}

NetlinkSocket::~NetlinkSocket() {
  if (fd_ >= 0) close(fd_);
}

// send(message: Buffer) -> void: one datagram to the kernel.
Napi::Value NetlinkSocket::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) ThrowCode(env, "ERR_CLOSED", "NetlinkSocket.send: the socket is closed");
  Napi::Buffer<uint8_t> msg = ArgBuffer(info, 0, "message");
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd_, msg.Data(), msg.Length(), 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "NetlinkSocket.send");
  return env.Undefined();
}

// recv() -> Buffer | null: one queued datagram, or null when none is queued (EAGAIN).
// Errors (ENOBUFS: the socket's receive queue overflowed and messages were lost) are thrown with their errno code.
Napi::Value NetlinkSocket::Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) ThrowCode(env, "ERR_CLOSED", "NetlinkSocket.recv: the socket is closed");
  ssize_t n;
  do {
    n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, errno, "NetlinkSocket.recv");
  }
  if ((size_t)n > buf_.size()) ThrowCode(env, "ERR_TRUNCATED", "NetlinkSocket.recv: datagram of " + std::to_string(n) + " bytes truncated");
  return Napi::Buffer<uint8_t>::Copy(env, buf_.data(), (size_t)n);
}

void NetlinkSocket::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Napi::Value NetlinkSocket::IsClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

Napi::Value NetlinkSocket::PortId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port_id_); }

}  // namespace flowtel
