# The four distributions move in lockstep: bump every packages/*/src/*/_version.py and
# the exact sibling pins together (tests/test_lockstep.py in kv-tools checks it).
__version__ = "0.1.0"
