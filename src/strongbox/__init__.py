"""strongbox: a secure container runtime where every container runs in its own microVM.

This top-level module is imported inside the guest too, so it must stay
standard-library only and cheap to import.
"""

__version__ = "0.1.0"
