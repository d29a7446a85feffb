"""Files that never lose data.

Atomic writes, folder publishing, checkpoints and weight fingerprints.
"""
