{
  "targets": [
    {
      "target_name": "flowtel_native",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/libbpf_log.cc",
        "src/bpf_object.cc",
        "src/ringbuf_reader.cc",
        "src/iterator_walk.cc",
        "src/packet_socket.cc",
        "src/netlink_socket.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags": ["-fPIC", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-Wformat", "-Werror=format-security"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers",
                    "-fPIC", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-Wformat", "-Werror=format-security"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now", "-Wl,-z,noexecstack"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
