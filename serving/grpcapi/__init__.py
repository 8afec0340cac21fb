"""The Open Inference Protocol over gRPC: translates calls onto serving/v2, as api/ does HTTP."""
