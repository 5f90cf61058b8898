"""Generated protobuf modules: see scripts/gen-proto.sh."""
