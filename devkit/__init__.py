"""Tooling for the demo, the tests and the benchmarks, not for production:
the embedded Kafka broker (Tansu) and the seeded synthetic event stream."""
