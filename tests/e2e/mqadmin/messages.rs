//! Consumers, producers, messages and offsets.
