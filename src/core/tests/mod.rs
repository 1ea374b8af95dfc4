//! The core driven by a scripted sidecar in memory.
