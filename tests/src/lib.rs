//! Harness for FerroMQ's end-to-end tests.
