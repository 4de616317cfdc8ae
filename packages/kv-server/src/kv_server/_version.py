# Lockstep with the other packages (see kv_protocol/_version.py).
__version__ = "0.1.0"
