"""Wire protocols, sans-I/O: bytes or text in, typed commands out; values in, bytes out."""
