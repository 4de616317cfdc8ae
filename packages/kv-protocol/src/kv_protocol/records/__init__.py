"""The on-disk codecs, sans-IO: the server writes with them, the tools read and repair.

- :mod:`.tagged`: lossless JSON text for every kv value (bytes, big ints, inf and
  nan, maps with non-text keys), the canonical form the AOF checksums.
- :mod:`.aof`: the append-only file: a header line, then one checksummed record
  per line.
- :mod:`.snapshot`: the snapshot file in its plaintext and binary encodings.

docs/persistence.md describes the formats for readers in other languages.
"""
