//! Engine tests with a manual clock: see below.
