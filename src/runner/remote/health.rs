//! Worker health (bistro-runtime §5.3).
