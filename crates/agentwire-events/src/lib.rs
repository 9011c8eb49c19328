//! agentwire-events (in progress).
