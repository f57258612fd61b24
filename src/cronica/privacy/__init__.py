"""Personal data: per-subject keys and field-level encryption, for crypto-shredding (seed
1.7.4): destroy a subject's key and their personal data is unreadable everywhere it was copied
(the store, its backups, the bus), while the events still replay.

A field is declared personal in its event class (``owner: Annotated[str, PERSONAL]``); a
:class:`~cronica.repository.Repository` then encrypts it with the key of the aggregate's data
subject, and decrypts it on load. :func:`forget` erases a subject. See
:mod:`cronica.privacy.keys`, :mod:`cronica.privacy.cipher` and :mod:`cronica.privacy.erasure`.
"""

from cronica.event_types import PERSONAL
from cronica.privacy.cipher import ERASED, PREFIX, SUBJECT_KEY, PersonalData
from cronica.privacy.erasure import ERASURE_EVENT, Erasure, PersonalDataErased, forget
from cronica.privacy.keys import MASTER_KEY_VARIABLE, SubjectForgottenError, SubjectKeys

__all__ = [
    "ERASED",
    "ERASURE_EVENT",
    "MASTER_KEY_VARIABLE",
    "PERSONAL",
    "PREFIX",
    "SUBJECT_KEY",
    "Erasure",
    "PersonalData",
    "PersonalDataErased",
    "SubjectForgottenError",
    "SubjectKeys",
    "forget",
]
