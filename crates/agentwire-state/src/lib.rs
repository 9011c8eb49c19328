//! agentwire-state (in progress).
