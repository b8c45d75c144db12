"""cc_grpc_library: compiles .proto files with the system protoc and grpc_cpp_plugin.

Bazel's proto rules would fetch @com_google_protobuf, which cannot be downloaded here, so one
genrule runs protoc over all sources at once (generated code is built once, under one target).
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def cc_grpc_library(name, srcs, deps = [], visibility = None):
    """Messages and gRPC stubs for every file in srcs (protoc writes stubs for each file)."""
    pb = []
    for s in srcs:
        base = s[:-len(".proto")]
        pb += [base + ".pb.h", base + ".pb.cc", base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = pb,
        cmd = " ".join([
            "protoc -I. --cpp_out=$(GENDIR)",
            "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
            " ".join(["$(location %s)" % s for s in srcs]),
        ]),
    )
    cc_library(
        name = name,
        srcs = [f for f in pb if f.endswith(".cc")],
        hdrs = [f for f in pb if f.endswith(".h")],
        deps = deps + ["//third_party:grpc"],
        # Kinds are found by name in the descriptor pool, so every message must be linked in.
        alwayslink = True,
        visibility = visibility,
    )
