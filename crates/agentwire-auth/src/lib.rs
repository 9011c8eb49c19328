//! agentwire-auth (in progress).
