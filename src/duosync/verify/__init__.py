"""Verification: chunk checksums inside each database, row diff of differing chunks,
correcting statements.

``verify_task(spec)`` returns a ``VerifyReport``; ``fix.statements(report, source)``
turns it into the statements that make the target equal to the source.
"""

from duosync.verify.report import RecheckInfo, TableReport, VerifyReport, render
from duosync.verify.service import verify_task

__all__ = ["RecheckInfo", "TableReport", "VerifyReport", "render", "verify_task"]
