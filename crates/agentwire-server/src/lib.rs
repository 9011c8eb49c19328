//! agentwire-server (in progress).
