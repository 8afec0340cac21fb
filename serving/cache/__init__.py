"""The prediction cache: key and protocol, in-process LRU, Redis."""
