"""The protocol's .proto and the modules protoc makes of it (scripts/compile_protos.py)."""
