//! Integration tests through the real `bistro` binary.

mod util;

mod demo;
