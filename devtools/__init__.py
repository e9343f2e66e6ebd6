"""Development tools that are not part of the service: a local object store (SeaweedFS) and the
scale-out profile on one machine, for trials, tests and benchmarks."""
