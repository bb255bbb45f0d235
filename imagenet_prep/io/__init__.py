"""Bytes in and out: byte sources, tar scanning and the member-safety policy, the index cache, atomic writes."""
