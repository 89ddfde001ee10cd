"""Exception capture: snapshots of failures with the locals of each frame, grouped by fingerprint.

``snapshots`` turns an exception into events and owns the process hooks; ``fingerprints``
decides which failures are the same and which frames belong to the application.
"""

from peephole.agent.exception_capture.snapshots import ExceptionCapture, active, capture_active

__all__ = ["ExceptionCapture", "active", "capture_active"]
