"""Personal data: per-subject keys and field-level encryption, for crypto-shredding (seed
1.7.4): destroy a subject's key and their personal data is unreadable everywhere it was copied
(the store, its backups, the bus), while the events still replay.

See :mod:`cronica.privacy.keys` and :mod:`cronica.privacy.cipher`.
"""

from cronica.privacy.cipher import ERASED, PREFIX, SUBJECT_KEY, PersonalData
from cronica.privacy.keys import MASTER_KEY_VARIABLE, SubjectForgottenError, SubjectKeys

__all__ = [
    "ERASED",
    "MASTER_KEY_VARIABLE",
    "PREFIX",
    "SUBJECT_KEY",
    "PersonalData",
    "SubjectForgottenError",
    "SubjectKeys",
]
