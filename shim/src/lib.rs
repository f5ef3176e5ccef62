//! libddl.so
