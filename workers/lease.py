"""The fencing lease lives in ``store.lease`` (store/ is the only package that talks to
Redis); this name stays for the imports that know it."""

from store.lease import Lease

__all__ = ["Lease"]
