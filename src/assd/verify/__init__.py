"""What a request did.

The outcome on forget / retain / held-out sets, the retain guard, and the
membership of rows in those sets.
"""
