"""The errors that mean "a dependency is away right now", shared by every layer.

The store, the job queue and the image store raise them; the service layer
and the web tier catch them to degrade one feature instead of failing the
page. They live here, importing nothing, so that catching an outage never
makes the web tier import an adapter.
"""

from __future__ import annotations


class Unavailable(Exception):
    """A dependency cannot do the work now; the same call may succeed later."""


class StoreUnavailable(Unavailable):
    """The database cannot be reached or refused the work right now."""


class QueueUnavailable(Unavailable):
    """The queue did not accept the messages; they stay in the outbox."""


class ImageStoreUnavailable(Unavailable):
    """The image store did not take or give a picture; the caller may retry."""
