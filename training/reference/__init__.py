"""Reference implementation of latentsight's bitstream format v1 and rANS coder, in plain Python.

Bit-exact with the TypeScript implementation in ``src/bitstream`` and ``src/entropy``: the golden
vectors in ``test/vectors/`` are written by this package and checked by ``npm test``. Training and
evaluation use it for true bitstream sizes; it favours clarity over speed.
"""
