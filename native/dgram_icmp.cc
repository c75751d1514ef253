// Unprivileged ICMP echo sockets (SOCK_DGRAM, IPPROTO_ICMP / IPPROTO_ICMPV6) with
// kernel receive timestamps. raw-socket only opens SOCK_RAW on Linux, which needs
// CAP_NET_RAW; these need only net.ipv4.ping_group_range to cover the process group.
// Kept thin: open, send, a readiness poll that hands datagrams to JS, close.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <memory>
#include <ctime>
#include <linux/errqueue.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// The errno's own name (EHOSTDOWN, ECONNREFUSED, ...), never a catch-all: callers branch on it.
const char* ErrnoCode(int err) {
  const char* name = uv_err_name(uv_translate_sys_error(err));
  return name != nullptr ? name : "EUNKNOWN";
}

Napi::Error ErrnoError(Napi::Env env, const char* what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoCode(err)));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// Times are milliseconds since this base: small numbers keep nanosecond precision in a double.
const time_t kBaseSeconds = time(nullptr);

double ToMs(const timespec& ts) { return static_cast<double>(ts.tv_sec - kBaseSeconds) * 1e3 + ts.tv_nsec / 1e6; }

double RealtimeMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ToMs(ts);
}

class DgramIcmp : public Napi::ObjectWrap<DgramIcmp> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "DgramIcmp",
                       {InstanceMethod("send", &DgramIcmp::Send), InstanceMethod("drain", &DgramIcmp::DrainNow),
                        InstanceMethod("now", &DgramIcmp::Now), InstanceMethod("callbackErrors", &DgramIcmp::CallbackErrors),
                        InstanceMethod("close", &DgramIcmp::Close)});
  }

  // new DgramIcmp(family: 4 | 6, onMessage(buf, source, rxMs), onIcmpError(quoted, destination, type, code, offender, rxMs, info),
  //               onFailure(error), dontFragment?: boolean)
  // `info` is the kernel's ee_info: the next-hop MTU of a fragmentation-needed or packet-too-big.
  explicit DgramIcmp(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DgramIcmp>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsFunction() || !info[2].IsFunction() || !info[3].IsFunction()) {
      Napi::TypeError::New(env, "DgramIcmp(family, onMessage, onIcmpError, onFailure)").ThrowAsJavaScriptException();
      return;
    }
    family_ = info[0].As<Napi::Number>().Int32Value();
    if (family_ != 4 && family_ != 6) {
      Napi::TypeError::New(env, "family must be 4 or 6").ThrowAsJavaScriptException();
      return;
    }
    on_message_ = Napi::Persistent(info[1].As<Napi::Function>());
    on_error_ = Napi::Persistent(info[2].As<Napi::Function>());
    on_failure_ = Napi::Persistent(info[3].As<Napi::Function>());
    int domain = family_ == 4 ? AF_INET : AF_INET6;
    int proto = family_ == 4 ? static_cast<int>(IPPROTO_ICMP) : static_cast<int>(IPPROTO_ICMPV6);
    fd_ = socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd_ < 0) {
      ErrnoError(env, "socket(SOCK_DGRAM, ICMP)", errno).ThrowAsJavaScriptException();
      return;
    }
    int one = 1;
    // Kernel receive timestamps: the RTT must not include the time the process took to wake up.
    setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    // ICMP errors (unreachable, time exceeded) arrive on the error queue only with RECVERR.
    if (family_ == 4) setsockopt(fd_, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
    else setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one));
    // Path-MTU probes: DF set, and sent at full size whatever MTU the kernel learned for the path
    // (PROBE, not DO): a path that recovered is seen to, and every probe meets the real bottleneck.
    if (info.Length() > 4 && info[4].ToBoolean().Value()) {
      int probe = family_ == 4 ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE;
      int rc = family_ == 4 ? setsockopt(fd_, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof(probe))
                            : setsockopt(fd_, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof(probe));
      if (rc == 0 && family_ == 6) rc = setsockopt(fd_, IPPROTO_IPV6, IPV6_DONTFRAG, &one, sizeof(one));
      if (rc != 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        ErrnoError(env, "setsockopt(MTU_DISCOVER, PROBE)", err).ThrowAsJavaScriptException();
        return;
      }
    }
    int rcvbuf = 4 * 1024 * 1024;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    // Requests to a destination whose neighbour does not resolve wait in the ARP queue, charged to
    // this socket's send buffer: a larger one (capped by net.core.wmem_max) keeps healthy sends going.
    int sndbuf = 4 * 1024 * 1024;
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      ::close(fd_);
      fd_ = -1;
      Napi::Error::New(env, "uv_poll_init failed").ThrowAsJavaScriptException();
      return;
    }
    int rc = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (rc != 0) {
      // Without the poll no reply is ever read: refuse to open rather than time out every probe.
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      ::close(fd_);
      fd_ = -1;
      Napi::Error e = Napi::Error::New(env, std::string("uv_poll_start failed: ") + uv_strerror(rc));
      e.Set("code", Napi::String::New(env, uv_err_name(rc)));
      e.ThrowAsJavaScriptException();
      return;
    }
    Ref();  // Alive while polling, even if JS drops its reference before close().
  }

  ~DgramIcmp() override { CloseFd(); }

 private:
  // Returns the time right before sendto, in the same clock as the receive timestamps.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      Napi::Error::New(env, "socket is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsString()) {
      Napi::TypeError::New(env, "send(buffer, address)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> buf = info[0].As<Napi::Buffer<uint8_t>>();
    std::string address = info[1].As<Napi::String>().Utf8Value();
    sockaddr_storage ss{};
    socklen_t len;
    if (family_ == 4) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
      sin->sin_family = AF_INET;
      if (inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) {
        Napi::TypeError::New(env, "not an IPv4 address: " + address).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      len = sizeof(sockaddr_in);
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
      sin6->sin6_family = AF_INET6;
      if (inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) {
        Napi::TypeError::New(env, "not an IPv6 address: " + address).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      len = sizeof(sockaddr_in6);
    }
    double tx = RealtimeMs();
    ssize_t n = sendto(fd_, buf.Data(), buf.Length(), 0, reinterpret_cast<sockaddr*>(&ss), len);
    if (n < 0) {
      ErrnoError(env, "sendto", errno).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, tx);
  }

  // Reads everything queued now, synchronously: the prober calls it before judging a probe lost,
  // since the poll phase that would read it comes after the timers phase. Returns datagrams read.
  Napi::Value DrainNow(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), Drain(kDrainAllLimit, false));
  }

  // The clock of send and receive times (CLOCK_REALTIME, same base): to tell a wall-clock step.
  Napi::Value Now(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), RealtimeMs()); }

  // Callbacks that threw (their exception cleared here so reading goes on).
  Napi::Value CallbackErrors(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), callback_errors_); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseFd();
    return info.Env().Undefined();
  }

  void CloseFd() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
      }
      Unref();
    }
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<DgramIcmp*>(handle->data);
    // Bounded per wake-up so a flood cannot starve the event loop; the poll fires again.
    self->Drain(kDrainPerWakeup, true);
    // libuv stops a poll handle on POLLERR (a queued ICMP error): read it above, then poll again.
    if (status < 0 && self->poll_ != nullptr) {
      int rc = uv_poll_start(self->poll_, UV_READABLE, OnPoll);
      if (rc != 0) self->Fail("uv_poll_start", rc);
    }
  }

  // Tells JS that the socket stopped reading: nothing else would ever say so.
  void Fail(const char* what, int uv_error) {
    Napi::Env env = on_failure_.Env();
    Napi::HandleScope scope(env);
    Napi::Error e = Napi::Error::New(env, std::string(what) + " failed: " + uv_strerror(uv_error));
    e.Set("code", Napi::String::New(env, uv_err_name(uv_error)));
    on_failure_.MakeCallback(env.Global(), {e.Value()});
    ClearException(env);
  }

  // A callback that threw must not leave its exception pending: every later call would fail.
  void ClearException(Napi::Env env) {
    if (!env.IsExceptionPending()) return;
    env.GetAndClearPendingException();
    callback_errors_++;
  }

  void Deliver(Napi::FunctionReference& fn, bool async, std::initializer_list<napi_value> args) {
    Napi::Env env = fn.Env();
    if (async) fn.MakeCallback(env.Global(), args);
    else fn.Call(env.Global(), args);
    ClearException(env);
  }

  static double TimestampMs(msghdr* msg) {
    for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof(ts));
        return ToMs(ts);
      }
    }
    return RealtimeMs();
  }

  static std::string AddressString(const sockaddr* sa) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof(text));
    else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text, sizeof(text));
    return text;
  }

  // One datagram with its peer address and control messages, without blocking; < 0 when none is queued.
  struct Received {
    // Whole datagrams up to the largest ICMP message: a path-MTU probe's reply is as large as a jumbo frame.
    uint8_t data[65536];
    alignas(cmsghdr) char control[512];
    sockaddr_storage peer;
    iovec iov;
    msghdr msg;
  };

  ssize_t Receive(Received& r, int flags) {
    r.peer = {};
    r.iov = {r.data, sizeof(r.data)};
    r.msg = {};
    r.msg.msg_name = &r.peer;
    r.msg.msg_namelen = sizeof(r.peer);
    r.msg.msg_iov = &r.iov;
    r.msg.msg_iovlen = 1;
    r.msg.msg_control = r.control;
    r.msg.msg_controllen = sizeof(r.control);
    return recvmsg(fd_, &r.msg, flags | MSG_DONTWAIT);
  }

  static constexpr int kDrainPerWakeup = 256;
  static constexpr int kDrainAllLimit = 1 << 16;

  // Reads up to `limit` datagrams and up to `limit` queued errors; `async`: called from the loop, not from JS.
  int Drain(int limit, bool async) {
    Napi::Env env = on_message_.Env();
    Napi::HandleScope scope(env);
    Received& r = *received_;
    msghdr& msg = r.msg;
    uint8_t* data = r.data;
    int read = 0;
    for (int i = 0; i < limit && fd_ >= 0; i++) {
      ssize_t n = Receive(r, 0);
      if (n < 0) break;
      read++;
      const sockaddr_storage& from = r.peer;
      double rx = TimestampMs(&msg);
      Deliver(on_message_, async,
              {Napi::Buffer<uint8_t>::Copy(env, data, static_cast<size_t>(n)),
               Napi::String::New(env, AddressString(reinterpret_cast<const sockaddr*>(&from))), Napi::Number::New(env, rx)});
    }
    for (int i = 0; i < limit && fd_ >= 0; i++) {
      ssize_t n = Receive(r, MSG_ERRQUEUE);
      if (n < 0) break;
      read++;
      const sockaddr_storage& dest = r.peer;
      double rx = TimestampMs(&msg);
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
        bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
        if (!v4 && !v6) continue;
        auto* ee = reinterpret_cast<sock_extended_err*>(CMSG_DATA(c));
        if (ee->ee_origin != SO_EE_ORIGIN_ICMP && ee->ee_origin != SO_EE_ORIGIN_ICMP6) continue;
        std::string offender = AddressString(SO_EE_OFFENDER(ee));
        Deliver(on_error_, async,
                {Napi::Buffer<uint8_t>::Copy(env, data, static_cast<size_t>(n)),
                 Napi::String::New(env, AddressString(reinterpret_cast<const sockaddr*>(&dest))), Napi::Number::New(env, ee->ee_type),
                 Napi::Number::New(env, ee->ee_code), Napi::String::New(env, offender), Napi::Number::New(env, rx),
                 Napi::Number::New(env, ee->ee_info)});
      }
    }
    return read;
  }

  int family_ = 4;
  int fd_ = -1;
  // 64 KiB: one per socket rather than on the stack of every drain.
  std::unique_ptr<Received> received_ = std::make_unique<Received>();
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_message_;
  Napi::FunctionReference on_error_;
  Napi::FunctionReference on_failure_;
  double callback_errors_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("DgramIcmp", DgramIcmp::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(dgram_icmp, Init)
