"""Command-line overrides of a dataclass config, nanoGPT style: ``--key value``, ``--key=value`` or a
bare ``--flag``; unknown keys and values of the wrong type are rejected. Shared by every training
script (``codec/train.py``, ``tasks/classify.py``, ``tasks/segment.py``).
"""
import dataclasses


def parse_overrides(cfg_cls, argv):
    """{key: raw string} from ``--key value``, ``--key=value`` or a bare ``--flag`` (booleans).

    Unknown keys are rejected with the list of known ones.
    """
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise SystemExit(f"unexpected argument {arg!r}; overrides are --key value")
        key, eq, val = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in fields:
            raise SystemExit(f"unknown config key {key!r}; known: {', '.join(fields)}")
        if not eq:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if fields[key].type in (bool, "bool") and (nxt is None or nxt.startswith("--")):
                val = "true"
            elif nxt is None:
                raise SystemExit(f"--{key} needs a value")
            else:
                val, i = nxt, i + 1
        out[key] = val
        i += 1
    return out


def apply_overrides(cfg, raw, choices=None):
    """Sets each raw override on ``cfg`` with the type of its default; ``choices`` limits values."""
    for key, val in raw.items():
        typ = type(getattr(cfg, key))
        if typ is bool:
            if val.lower() not in ("true", "false", "1", "0"):
                raise SystemExit(f"--{key} expects true/false, got {val!r}")
            setattr(cfg, key, val.lower() in ("true", "1"))
            continue
        try:
            setattr(cfg, key, typ(val))
        except ValueError:
            raise SystemExit(f"--{key} expects {typ.__name__}, got {val!r}")
    for key, allowed in (choices or {}).items():
        if getattr(cfg, key) not in allowed:
            raise SystemExit(f"--{key} must be one of {', '.join(allowed)}, "
                             f"got {getattr(cfg, key)!r}")
    return cfg
