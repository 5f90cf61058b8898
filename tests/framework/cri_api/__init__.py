"""Generated gRPC modules of the CRI runtime.v1 subset: see scripts/gen-proto.sh."""
