"""Test kits shipped with the package, for this project's tests and for third-party backends.

:mod:`icechunk.testing.storage` holds :class:`~icechunk.testing.storage.StorageTests`, the
conformance suite every :class:`~icechunk.storage.Storage` backend must pass. Importing these
modules requires pytest.
"""
