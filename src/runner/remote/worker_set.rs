//! Worker-set consensus (bistro-runtime §5.11, §5.12).
