//! Helpers for the end-to-end tests: starting stratad, running real clients.
