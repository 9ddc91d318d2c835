//! The compose model: files found and loaded, merged in order, interpolated, validated
//! against the Compose Specification's schema, and normalised into typed structs.
