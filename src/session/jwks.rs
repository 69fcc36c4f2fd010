//! JWKS cache. STUB: the session work replaces this file.
